-- Replay a dead letter: its body stored again, a fresh record at attempt 1, due at once
-- (the mover admits and publishes it). The dead letter is gone once the delivery lives.
-- ARGV[A..]: delivery_id
-- Returns {'ok'} | {'missing'} | {'no_body'} | {'live'} | {'no_url'}
local id = ARGV[A]
local letter = key('dead', id)
local f = redis.call('HMGET', letter, 'msg', 'tag', 'url', 'event', 'ts', 'site', 'data',
                     'has_body', 'src')
if not f[1] then return {'missing'} end
if f[8] ~= '1' then return {'no_body'} end
if redis.call('EXISTS', key('dlv', id)) == 1 then return {'live'} end
if redis.call('HEXISTS', K.urls, f[2]) == 0 then return {'no_url'} end
local msg, tag = f[1], f[2]
local body = key('body', msg)
redis.call('HSETNX', body, 'event', f[4])
redis.call('HSETNX', body, 'ts', f[5])
redis.call('HSETNX', body, 'site', f[6])
redis.call('HSETNX', body, 'data', f[7])
redis.call('HINCRBY', body, 'refs', 1)
local now = now_ms()
redis.call('HSET', key('dlv', id), 'm', msg, 'u', tag, 'e', f[4], 'a', '1', 'p', '0',
           'o', num(redis.call('INCR', K.seq)), 'src', f[9], 'b', '0', 's', 'n', 't', num(now))
redis.call('ZADD', K.schedule, num(now), id)
redis.call('DEL', letter, key('done', id))
redis.call('ZREM', K.dead_index, id)
return {'ok'}
