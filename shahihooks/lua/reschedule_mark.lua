-- After a failed attempt whose retry went to another broker: record it as finished,
-- unless the delivery already reached a final state.
-- KEYS: done, pending, pending_at
-- ARGV: finished_attempt, done_ttl_s, delivery_id, pending_json, now_s
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
end
if ARGV[1] == '' then return 1 end
local done = redis.call('GET', KEYS[1])
if done ~= 'ok' and done ~= 'dead' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
