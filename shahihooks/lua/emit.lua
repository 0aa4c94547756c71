-- At emit: refuse a duplicate key or a throttled event, else store the body once for all its
-- deliveries and give each its record: queued (its message pushed here when the broker is
-- this Redis), deferred to its URL's backlog (its rate limit, or its endpoint's open
-- circuit), or dead-lettered (that backlog is full, the endpoint is disabled, or the target
-- was refused: `refused` says why; one endpoint's refusal never fails the others).
-- KEYS: emitted, throttle; each may be left out: '' (or the prefix P, in a Redis Cluster,
-- where every key a call names lies in its shard's slot)
-- Run twice by one emit (its answer was lost, and emit tried again), it changes nothing.
-- Arguments (contract.EmitArgs): listed_json, throttle_s, msg_id, event, ts, site, data,
-- queue (or ''), n, fingerprint, traceparent (or ''), nonce; from REST on, n targets (read
-- with target(i): contract.EmitTarget), then n messages
-- Returns {'duplicate', listed_json} | {'throttled'} | {'ok', verdict per delivery...}
--       | {'again', state per delivery...} (this emit had run: q x w n r b, '' if finished)
local msg = msg_id
n = tonumber(n)
local seen = redis.call('HMGET', key('body', msg), 'nonce', 'event')  -- every body has its event
if seen[1] == nonce then
  local states = {'again'}
  for i = 0, n - 1 do
    states[#states + 1] = redis.call('HGET', key('dlv', target(i).delivery_id), F.stage) or ''
  end
  return states
end
local marker = KEYS[1] ~= '' and KEYS[1] ~= P
if marker then
  local previous = redis.call('GET', KEYS[1])
  if previous then return {'duplicate', previous} end
  -- the key's marker expired, but deliveries of that event still live: the same event
  if seen[2] then return {'duplicate', listed_json} end
end
if KEYS[2] ~= '' and KEYS[2] ~= P then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'throttled'} end
  redis.call('SET', KEYS[2], '1', 'EX', throttle_s)
end
if marker then redis.call('SET', KEYS[1], listed_json, 'EX', C.done_ttl) end
if n == 0 then
  -- a step of no delivery (a Cluster's lead step: the key's marker and the throttle only;
  -- one Redis never stores an emit without targets): no delivery will release its body,
  -- so it keeps only its nonce (a retried step answers 'again'), for the idempotency TTL
  redis.call('HSET', key('body', msg), 'refs', 0, 'nonce', nonce)
  redis.call('EXPIRE', key('body', msg), C.done_ttl)
  return {'ok'}
end

local now = now_ms()
local order = num(redis.call('INCR', K.seq))
redis.call('HSET', key('body', msg), 'event', event, 'ts', ts, 'site', site, 'data', data,
           'refs', n, 'nonce', nonce, 'fp', fingerprint)
if traceparent ~= '' then redis.call('HSET', key('body', msg), 'tp', traceparent) end
local verdicts, push = {'ok'}, {}
local first_message = REST + TARGET_STRIDE * n
-- a later step of an emit in steps (its body is `<msg>.<step>`) may meet deliveries an
-- earlier emit of the same key made: those are never made again (nor overwritten)
local later_step = string.find(msg, '.', 1, true) ~= nil
local made_before = 0
for i = 0, n - 1 do
  local t = target(i)
  local id, tag = t.delivery_id, t.url_tag
  if later_step and (redis.call('EXISTS', key('dlv', id)) == 1
                     or redis.call('EXISTS', key('done', id)) == 1) then
    verdicts[#verdicts + 1] = 'duplicate'
    made_before = made_before + 1
  else
    redis.call('HSET', K.urls, tag, t.url, tag .. ':shown', t.shown_url)
    -- the record as record() would read it: written with its first stage (set_stage), or
    -- never, if it dies at once
    local d = {message = msg, url_tag = tag, event = event, attempt = '1', token = '0',
               order = order, source = t.src, bugs = '0', stage = '', since = num(now),
               window = '', checks = '', slot = '', lost = ''}
    unwritten = id
    local verdict
    if t.refused ~= '' then
      verdict = dead_now(id, d, now, t.refused)
    else
      verdict = admit_or_wait(id, d, now, tonumber(t.limit))
    end
    unwritten = nil
    verdicts[#verdicts + 1] = verdict
    if verdict == 'queued' and queue ~= '' then push[#push + 1] = ARGV[first_message + i] end
  end
end
if made_before > 0 then release_body(msg, made_before) end
for first = 1, #push, 1000 do  -- in chunks: unpack() is bounded by Lua's stack
  redis.call('LPUSH', queue, unpack(push, first, math.min(first + 999, #push)))
end
return verdicts
