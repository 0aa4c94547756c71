-- After an attempt: log it and count it, let its endpoint's health learn from it, then — if
-- the attempt still holds its delivery — mark it delivered, dead-letter it with its body, or
-- schedule its retry (a retry to an endpoint disabled by this very failure is dead-lettered
-- instead). One round trip.
-- When the broker is this Redis, it also acknowledges the attempt's message (kombu's record
-- of it as unacknowledged goes): one round trip fewer per delivery.
-- Arguments (contract.FinishArgs): delivery_id, token, kind (delivered|retry|dead|bug),
-- delay_ms, status, reason, response, stats_prefix, duration_ms, bucket, bug_max, signal
-- (ok|congested|failed, or '' to learn nothing), unacked_index, unacked, delivery_tag (or
-- ''), again ('1': this step was sent before and its answer lost: an outage), n_log; from
-- REST on, the log entry's n_log field pairs (logline.py)
-- Returns {kind for what was done (or 'stale' when the attempt had lost its delivery;
--          'again' when `again` and the attempt no longer holds it: the first try did it),
--          '1' if operational events wait to be sent, else '', then the messages of what its
--          endpoint's backlog may now send (the slot this attempt frees is handed on at
--          once, not at the mover's next step): id, token, attempt, event, url each}
local id, delay = delivery_id, tonumber(delay_ms)
local now = now_ms()
ops_added = false
if delivery_tag ~= '' then
  redis.call('ZREM', unacked_index, delivery_tag)
  redis.call('HDEL', unacked, delivery_tag)
end
local d = record(id)
local holds = d and d.token == token and d.stage == STAGE.sending
-- tried again after an outage: if the first try ran, it logged and counted (not twice)
if not holds and again == '1' then return {'again', ''} end
n_log = tonumber(n_log)
if n_log > 0 then
  redis.call('XADD', K.log, 'MAXLEN', '~', C.log_max, '*',
             unpack(ARGV, REST, REST - 1 + 2 * n_log))
  local stats, p = key('stats', num(math.floor(now / 3600000))), stats_prefix
  -- the attempts are the buckets' sum (logline.attempts); their count `n` is still written
  -- for the readers of an earlier version (a rolling upgrade, a rollback: theirs is
  -- failed = n - ok, and {p}:totals never expires)
  if redis.call('HINCRBY', stats, p .. STAT.count, '1') == 1 then  -- the hour's first
    redis.call('EXPIRE', stats, C.stats_ttl)
  end
  if bucket ~= '' then redis.call('HINCRBY', stats, p .. bucket, '1') end
  if kind == 'delivered' then redis.call('HINCRBY', stats, p .. STAT.ok, '1') end
  redis.call('HINCRBY', stats, p .. STAT.ms, duration_ms)
  -- the same, for ever (Prometheus counters must never go down): {p}:totals
  redis.call('HINCRBY', K.totals, p .. STAT.count, '1')
  if kind == 'delivered' then redis.call('HINCRBY', K.totals, p .. STAT.ok, '1') end
  redis.call('HINCRBY', K.totals, p .. STAT.ms, duration_ms)
  if bucket ~= '' then redis.call('HINCRBY', K.totals, p .. bucket, '1') end
end

if not holds then return {'stale', ops_added and '1' or ''} end
local disabled, waiting = false, nil  -- waiting: its endpoint's backlog has deliveries
if signal ~= '' then
  disabled, waiting = learn(id, d, now, signal, reason)
else
  redis.call('ZREM', key('fly', d.url_tag), id)  -- its slot, whatever became of it
end
if kind == 'retry' and disabled then
  kind = 'dead'
  dead_now(id, d, now, disabled_reason(health(d.url_tag)), true)
elseif kind == 'delivered' then
  retire(id, d, 'ok', true)  -- its slot given back just above
elseif kind == 'dead' then
  dead_letter(id, d, now, reason, status, response)
elseif kind == 'retry' then
  set_stage(id, d, STAGE.waiting, now, F.attempt, tonumber(d.attempt) + 1, F.bugs, '0')
  redis.call('ZADD', K.schedule, num(now + delay), id)
else  -- a bug in this process: tried again a few times, then dead-lettered, never forever
  local bugs = redis.call('HINCRBY', key('dlv', id), F.bugs, 1)
  if bugs >= tonumber(bug_max) then
    kind = 'dead'
    dead_now(id, d, now, reason .. ' (a bug: ' .. bugs .. ' tries)')
  else
    log_event(id, d, now, 'retry', reason .. ' (a bug: try ' .. bugs .. ')', delay)
    set_stage(id, d, STAGE.due, now)
    redis.call('ZADD', K.schedule, num(now + delay), id)
  end
end
local out = {kind, ops_added and '1' or ''}
if not disabled then
  if waiting == nil then waiting = redis.call('EXISTS', key('backlog', d.url_tag)) == 1 end
  if waiting then release(d.url_tag, now, HANDOFF_MAX, out) end
end
return out
