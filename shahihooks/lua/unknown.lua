-- A delivery message this version cannot read (an earlier shape, a newer version): never
-- dropped. If it names a delivery queued here (its record waits for a message), that
-- delivery is dead-lettered with the reason (replayable); else the message is kept in
-- `unknown`, the newest `max` of them.
-- ARGV[A..]: delivery_id (or ''), the message as received (JSON), reason, max
-- Returns {'dead'} | {'kept'}
local id, raw, reason = ARGV[A], ARGV[A + 1], ARGV[A + 2]
if id ~= '' then
  local d = record(id)
  if d and d.s == 'q' then
    dead_now(id, d, now_ms(), reason)
    return {'dead'}
  end
end
redis.call('LPUSH', K.unknown, raw)
redis.call('LTRIM', K.unknown, 0, tonumber(ARGV[A + 3]) - 1)
return {'kept'}
