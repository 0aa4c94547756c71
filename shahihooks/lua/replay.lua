-- Replay a dead letter: a fresh record at attempt 1 (the letter's reference on the body
-- passes to it; a letter of an earlier version stores its copy of the body again), due at once
-- (the mover admits and publishes it) — or, `in_order`, in its endpoint's backlog at its
-- first emit order (`endpoints enable --recover` replays a URL's dead letters that way, so
-- they leave in the order they were emitted). The dead letter is gone once the delivery
-- lives again.
-- Arguments (contract.ReplayArgs): delivery_id, in_order ('1' or '')
-- Returns {'ok'} | {'missing'} | {'no_body'} | {'live'} | {'no_url'} | {'full'}
local id = delivery_id
in_order = in_order == '1'
local letter = key('dead', id)
local f = redis.call('HMGET', letter, 'msg', 'tag', 'url', 'event', 'ts', 'site', 'data',
                     'has_body', 'src', 'o', 'ref')
if not f[1] then return {'missing'} end
if f[8] ~= '1' then return {'no_body'} end
local shared = f[11] == '1'
local body = key('body', f[1])
if shared and redis.call('EXISTS', body) == 0 then return {'no_body'} end
if redis.call('EXISTS', key('dlv', id)) == 1 then return {'live'} end
if redis.call('HEXISTS', K.urls, f[2]) == 0 then return {'no_url'} end
local msg, tag = f[1], f[2]
local backlog = key('backlog', tag)
if in_order and redis.call('ZCARD', backlog) >= C.backlog_max then return {'full'} end
if not shared then
  redis.call('HSETNX', body, 'event', f[4])
  redis.call('HSETNX', body, 'ts', f[5])
  redis.call('HSETNX', body, 'site', f[6])
  redis.call('HSETNX', body, 'data', f[7])
  redis.call('HINCRBY', body, 'refs', 1)
end
local now = now_ms()
local order = in_order and f[10] or num(redis.call('INCR', K.seq))
redis.call('HSET', key('dlv', id), F.message, msg, F.url_tag, tag, F.event, f[4],
           F.attempt, '1', F.token, '0', F.order, order, F.source, f[9], F.bugs, '0',
           F.stage, in_order and STAGE.backlog or STAGE.due, F.since, num(now))
if in_order then
  redis.call('ZADD', backlog, order, id)
  redis.call('ZADD', K.releases, 'LT', num(now), tag)
else
  redis.call('ZADD', K.schedule, num(now), id)
end
redis.call('DEL', letter, key('done', id))
redis.call('ZREM', K.dead_index, id)
return {'ok'}
