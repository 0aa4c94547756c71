-- At emit: refuse a duplicate key or a throttled event, else store the body once for all
-- its deliveries. One round trip.
-- and, when the broker is this Redis, push the task messages onto the queue.
-- KEYS: emitted (or ''), throttle (or ''), body, queue (or ''), pending, pending_at
-- ARGV: deliveries_json, idem_ttl_s, throttle_s, event, ts, site, data, refs, messages...
if KEYS[1] ~= '' then
  local previous = redis.call('GET', KEYS[1])
  if previous then return {'duplicate', previous} end
end
if KEYS[2] ~= '' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'throttled'} end
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
end
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
redis.call('HSET', KEYS[3], 'event', ARGV[4], 'ts', ARGV[5], 'site', ARGV[6],
           'data', ARGV[7], 'refs', ARGV[8])
redis.call('EXPIRE', KEYS[3], ARGV[2])
for _, d in ipairs(cjson.decode(ARGV[1])) do
  redis.call('HSET', KEYS[5], d[1], cjson.encode({d[2], ARGV[4], 1}))
  redis.call('ZADD', KEYS[6], ARGV[5], d[1])
end
if KEYS[4] ~= '' then
  for first = 9, #ARGV, 1000 do  -- in chunks: unpack() is bounded by Lua's stack
    redis.call('LPUSH', KEYS[4], unpack(ARGV, first, math.min(first + 999, #ARGV)))
  end
end
return {'ok'}
