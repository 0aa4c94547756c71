-- After an attempt: release the lease, record the outcome, log it, count it, and keep the
-- full body of a dead letter. One round trip. A failed attempt is marked finished later,
-- once its retry is queued (reschedule.lua). Reaching a final state (ok, dead) is
-- idempotent: a second copy of a delivery cannot release its body twice.
-- KEYS: done, lease, body, log, stats, dead_index, dead, pending, pending_at
-- ARGV: kind (delivered|retry|dead), attempt, token, done_ttl_s, log_maxlen, stats_ttl_s,
--       stats_prefix, duration_ms, bucket, now_s, delivery_id, n_log (pairs), log pairs...,
--       dead pairs...
local kind = ARGV[1]
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end

local before = redis.call('GET', KEYS[1])
local was_final = before == 'ok' or before == 'dead'
if kind == 'delivered' then
  redis.call('SET', KEYS[1], 'ok', 'EX', ARGV[4])
elseif kind == 'dead' and before ~= 'ok' then
  redis.call('SET', KEYS[1], 'dead', 'EX', ARGV[4])
end

local n_log = tonumber(ARGV[12])
local entry = {}
for i = 13, 12 + 2 * n_log do entry[#entry + 1] = ARGV[i] end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', unpack(entry))

local p = ARGV[7]
redis.call('HINCRBY', KEYS[5], p .. 'n', 1)
if kind == 'delivered' then redis.call('HINCRBY', KEYS[5], p .. 'ok', 1) end
redis.call('HINCRBY', KEYS[5], p .. 'ms', ARGV[8])
redis.call('HINCRBY', KEYS[5], p .. ARGV[9], 1)
redis.call('EXPIRE', KEYS[5], ARGV[6])

if kind == 'dead' and before ~= 'ok' then
  local record = {}
  for i = 13 + 2 * n_log, #ARGV do record[#record + 1] = ARGV[i] end
  redis.call('DEL', KEYS[7])
  redis.call('HSET', KEYS[7], unpack(record))
  redis.call('ZADD', KEYS[6], ARGV[10], KEYS[7])
end

if kind ~= 'retry' then
  redis.call('HDEL', KEYS[8], ARGV[11])
  redis.call('ZREM', KEYS[9], ARGV[11])
end
if kind ~= 'retry' and not was_final then
  if redis.call('HINCRBY', KEYS[3], 'refs', -1) <= 0 then redis.call('DEL', KEYS[3]) end
end
return kind
