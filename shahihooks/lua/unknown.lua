-- A delivery message this version cannot read (an earlier shape, a newer version): never
-- dropped. If it names a delivery queued here (its record waits for a message), that
-- delivery is dead-lettered with the reason (replayable); else the message is kept in
-- `unknown`, the newest `max` of them.
-- Arguments (contract.UnknownArgs): delivery_id (or ''), raw (the message as received,
-- JSON), reason, keep (the most kept)
-- Returns {'dead'} | {'kept'}
local id = delivery_id
if id ~= '' then
  local d = record(id)
  if d and d.stage == STAGE.queued then
    dead_now(id, d, now_ms(), reason)
    return {'dead'}
  end
end
redis.call('LPUSH', K.unknown, raw)
redis.call('LTRIM', K.unknown, 0, tonumber(keep) - 1)
return {'kept'}
