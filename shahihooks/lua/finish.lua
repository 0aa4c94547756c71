-- After an attempt: log it and count it, let its endpoint's health learn from it, then — if
-- the attempt still holds its delivery — mark it delivered, dead-letter it with its body, or
-- schedule its retry (a retry to an endpoint disabled by this very failure is dead-lettered
-- instead). One round trip.
-- When the broker is this Redis, it also acknowledges the attempt's message (kombu's record
-- of it as unacknowledged goes): one round trip fewer per delivery.
-- ARGV[A..]: delivery_id, token, kind (delivered|retry|dead|bug), delay_ms, status, reason,
--            response, stats_prefix, duration_ms, bucket, bug_max, signal (ok|congested|
--            failed, or '' to learn nothing), unacked_index, unacked, delivery_tag (or ''),
--            n_log, log pairs...
-- Returns {kind for what was done (or 'stale' when the attempt had lost its delivery),
--          '1' if operational events wait to be sent, else ''}
local id, pub, kind = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local delay, status, reason = tonumber(ARGV[A + 3]), ARGV[A + 4], ARGV[A + 5]
local signal = ARGV[A + 11]
local now = now_ms()
ops_added = false
if ARGV[A + 14] ~= '' then
  redis.call('ZREM', ARGV[A + 12], ARGV[A + 14])
  redis.call('HDEL', ARGV[A + 13], ARGV[A + 14])
end
local n_log = tonumber(ARGV[A + 15])
if n_log > 0 then
  redis.call('XADD', K.log, 'MAXLEN', '~', C.log_max, '*',
             unpack(ARGV, A + 16, A + 15 + 2 * n_log))
  local stats, p = key('stats', num(math.floor(now / 3600000))), ARGV[A + 7]
  if redis.call('HINCRBY', stats, p .. 'n', 1) == 1 then  -- the hour's first for this pair
    redis.call('EXPIRE', stats, C.stats_ttl)
  end
  if kind == 'delivered' then redis.call('HINCRBY', stats, p .. 'ok', 1) end
  redis.call('HINCRBY', stats, p .. 'ms', ARGV[A + 8])
  redis.call('HINCRBY', stats, p .. ARGV[A + 9], 1)
  -- the same, for ever (Prometheus counters must never go down): {p}:totals
  if kind == 'delivered' then redis.call('HINCRBY', K.totals, p .. 'ok', 1) end
  redis.call('HINCRBY', K.totals, p .. 'n', 1)
  redis.call('HINCRBY', K.totals, p .. 'ms', ARGV[A + 8])
  redis.call('HINCRBY', K.totals, p .. ARGV[A + 9], 1)
end

local d = record(id)
if not d or d.p ~= pub or d.s ~= 'x' then return {'stale', ops_added and '1' or ''} end
local disabled = false
if signal ~= '' then
  disabled = learn(id, d, now, signal, reason)
else
  redis.call('ZREM', key('fly', d.u), id)  -- its slot, whatever became of it
end
if kind == 'retry' and disabled then
  kind = 'dead'
  dead_now(id, d, now, disabled_reason(health(d.u)), true)
elseif kind == 'delivered' then
  retire(id, d, 'ok')
elseif kind == 'dead' then
  dead_letter(id, d, now, reason, status, ARGV[A + 6])
elseif kind == 'retry' then
  redis.call('HSET', key('dlv', id), 'a', tonumber(d.a) + 1, 'b', '0')
  set_state(id, d, 'w', now)
  redis.call('ZADD', K.schedule, num(now + delay), id)
else  -- a bug in this process: tried again a few times, then dead-lettered, never forever
  local bugs = redis.call('HINCRBY', key('dlv', id), 'b', 1)
  if bugs >= tonumber(ARGV[A + 10]) then
    kind = 'dead'
    dead_now(id, d, now, reason .. ' (a bug: ' .. bugs .. ' tries)')
  else
    log_event(id, d, now, 'retry', reason .. ' (a bug: try ' .. bugs .. ')', delay)
    set_state(id, d, 'n', now)
    redis.call('ZADD', K.schedule, num(now + delay), id)
  end
end
return {kind, ops_added and '1' or ''}
