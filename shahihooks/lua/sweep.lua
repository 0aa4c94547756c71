-- Find deliveries with no sign of life for too long (their message was lost: a worker killed
-- between taking it and recording it, a Redis that lost its last writes), mark them seen,
-- and hand them back to be queued again. One sweeper at a time, across all workers.
-- KEYS: pending, pending_at, lock
-- ARGV: cutoff_s, now_s, limit, lock_ttl_s
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then return {} end
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])) do
  local info = redis.call('HGET', KEYS[1], id)
  if info then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    out[#out + 1] = id
    out[#out + 1] = info
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
