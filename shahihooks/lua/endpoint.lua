-- An operator's word on an endpoint (any, of the settings or the store: its health lives
-- here): 'disable' (nothing more is sent: its deliveries are dead-lettered as they come up,
-- its backlog at once), 'enable' (a fresh start: circuit closed, limit back to its start,
-- failures forgotten), 'limit' (its own ceiling on attempts in flight, or '' for the
-- settings'). `ops`: it is an operational endpoint (no event is sent about it).
-- Arguments (contract.EndpointArgs): action, url_tag, arg (the reason, or the ceiling),
-- ops ('1' or ''), url, url_shown
-- Returns {'ok', failing_since_ms or '', disabled_since_ms or ''} (as they were before)
local tag, quiet = url_tag, ops == '1'
local now = now_ms()
redis.call('HSET', K.urls, tag, url, tag .. ':shown', url_shown)
local ep = key('ep', tag)
local was = redis.call('HMGET', ep, HF.failing_since, HF.disabled_since)
if action == 'disable' then
  if not was[2] then disable(tag, now, arg, quiet) end
elseif action == 'enable' then
  redis.call('HDEL', ep, HF.disabled_since, HF.disabled_reason, HF.failing_since, HF.failures,
             HF.open_until, HF.openings, HF.probe, HF.probe_until, HF.limit, HF.slow_start)
  redis.call('ZADD', K.releases, 'LT', num(now), tag)
  if was[2] and not quiet then ops_event('endpoint.enabled', tag, now, {}) end
elseif action == 'limit' then
  if arg == '' then
    redis.call('HDEL', ep, HF.ceiling)
  else
    redis.call('HSET', ep, HF.ceiling, arg)
  end
end
return {'ok', was[1] or '', was[2] or ''}
