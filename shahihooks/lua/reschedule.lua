-- After a failed attempt (or a deferral), when the broker is this Redis: enqueue the next
-- attempt and, for a failed one, record that attempt as finished. One round trip, atomic:
-- an attempt is only marked finished once its successor is queued.
-- KEYS: queue, done, pending, pending_at
-- ARGV: message, finished_attempt (or ''), done_ttl_s, delivery_id, pending_json, now_s
redis.call('LPUSH', KEYS[1], ARGV[1])
if redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then
  redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[4])
end
if ARGV[2] ~= '' then
  local done = redis.call('GET', KEYS[2])
  if done ~= 'ok' and done ~= 'dead' then
    redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  end
end
return 1
