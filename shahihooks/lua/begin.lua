-- Before an attempt: only the live message of a queued delivery goes on (a copy, a stale
-- message or one for a finished delivery is dropped); a delivery to a removed stored
-- endpoint or a disabled one is dead-lettered; one held back by its endpoint's health (its
-- circuit is open, or its limit of attempts in flight is reached) waits in the backlog
-- without spending an attempt; one admitted in an earlier rate window takes a slot in this
-- one (or waits in the backlog). Then the attempt holds the delivery for its lease, and
-- gets the URL, the body and the endpoint. One round trip.
-- Arguments (contract.BeginArgs): delivery_id, token
-- Returns {'go', url, event, attempt, ts, site, data, endpoint_json, src, fingerprint,
--          traceparent}
--       | {'stale'} | {'busy'} | {'deferred', reason} | {'dead', reason}
local id = delivery_id
local now = now_ms()
local d = record(id)
if not d or d.token ~= token then return {'stale'} end
if d.stage == STAGE.sending then return {'busy'} end
if d.stage ~= STAGE.queued then return {'stale'} end

-- Everything published before this message has left the queue (see claim.lua).
redis.call('ZADD', K.watermark, 'GT', d.since, 'ms')

local url = redis.call('HGET', K.urls, d.url_tag)
-- a stored endpoint's own secrets and style; a URL of the settings is signed by the settings
local endpoint = url and d.source == 'store' and redis.call('HGET', K.endpoints, url)
local reason
if not url then
  reason = 'its URL is not known to this Redis'
elseif d.source == 'store' and not endpoint then
  reason = 'endpoint removed from the store: not sent (replay it once the endpoint is back)'
end
local body = redis.call('HMGET', key('body', d.message), 'event', 'ts', 'site', 'data', 'fp', 'tp')
if not reason and not body[1] then reason = 'the stored body is gone (Redis lost it)' end
if reason then
  dead_now(id, d, now, reason)
  return {'dead', reason}
end

if string.sub(url, 1, 7) ~= 'action:' then
  local h = health(d.url_tag)
  local held = gate(id, d, h, now)
  if held then
    -- the rate slot it took is given back: it takes another when it is released
    if d.window ~= '' and redis.call('EXISTS', key('rate', d.url_tag, d.window)) == 1 then
      redis.call('DECR', key('rate', d.url_tag, d.window))
    end
    local verdict, why = hold(id, d, now, h, held)
    return {verdict, why}
  end
end

-- admitted under a limit, in an earlier window (the queue was slow): a slot in this one
local limit = d.window ~= '' and d.window ~= window_of(now) and limit_of(url) or 0
if limit > 0 then
  local win = admit(d.url_tag, limit, now)
  if not win then
    redis.call('ZREM', key('fly', d.url_tag), id)
    if rate_wait(id, d, now, limit) then return {'deferred', 'rate limit of ' .. limit} end
    dead_now(id, d, now, BACKLOG_FULL)
    return {'dead', BACKLOG_FULL}
  end
  redis.call('HSET', key('dlv', id), F.window, win)
end

set_stage(id, d, STAGE.sending, now)
redis.call('ZADD', K.schedule, num(now + C.lease_ms), id)
return {'go', url, d.event, d.attempt, body[2], body[3], body[4], endpoint or '', d.source,
        body[5] or '', body[6] or ''}
