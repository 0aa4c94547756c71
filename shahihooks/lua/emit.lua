-- At emit: refuse a duplicate key or a throttled event, else store the body once for all
-- its deliveries. One round trip.
-- KEYS: emitted (or ''), throttle (or ''), body
-- ARGV: deliveries_json, idem_ttl_s, throttle_s, event, ts, site, data, refs
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
return {'ok'}
