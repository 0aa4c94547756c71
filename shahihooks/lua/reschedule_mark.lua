-- After a failed attempt whose retry went to another broker: record it as finished,
-- unless the delivery already reached a final state.
-- KEYS: done
-- ARGV: finished_attempt, done_ttl_s
local done = redis.call('GET', KEYS[1])
if done ~= 'ok' and done ~= 'dead' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
