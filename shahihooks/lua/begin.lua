-- Before an attempt: skip a delivered (or stale) one, apply the URL's rate limit, take the
-- in-flight lease, and hand back the body and the endpoint. One round trip.
-- KEYS: done, lease, rate, body, endpoints, pending_at
-- ARGV: attempt, token, lease_ms, default_limit, rate_ttl_s, url, window_left_s, body_ttl_s,
--       delivery_id, now_s
redis.call('ZADD', KEYS[6], 'XX', ARGV[10], ARGV[9])  -- a sign of life, for the sweeper
local done = redis.call('GET', KEYS[1])
if done == 'ok' then return {'done'} end
if done == 'dead' then return {'stale'} end
if done and tonumber(done) >= tonumber(ARGV[1]) then return {'stale'} end

local endpoint = redis.call('HGET', KEYS[5], ARGV[6])
local limit = tonumber(ARGV[4])
if endpoint then
  local ok, decoded = pcall(cjson.decode, endpoint)
  if ok and type(decoded) == 'table' and type(decoded['rate_limit']) == 'number' then
    limit = decoded['rate_limit']
  end
end
if limit > 0 and (tonumber(redis.call('GET', KEYS[3])) or 0) >= limit then
  redis.call('EXPIRE', KEYS[4], ARGV[8])  -- a deferred delivery keeps its body alive
  return {'defer', ARGV[7]}
end

if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {'busy', tostring(redis.call('PTTL', KEYS[2]))}
end

local body = redis.call('HMGET', KEYS[4], 'event', 'ts', 'site', 'data')
if not body[1] then
  redis.call('DEL', KEYS[2])
  return {'gone'}
end
if limit > 0 then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
return {'go', body[1], body[2], body[3], body[4], endpoint or ''}
