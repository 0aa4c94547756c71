-- Messages that could not be published (the broker is away): the mover publishes them
-- as soon as it can, without admitting them again.
-- Arguments (contract.UnpublishedArgs): none; from REST on, delivery_id, token, ...
local now = now_ms()
for i = REST, #ARGV, 2 do
  local d = record(ARGV[i])
  if d and d.token == ARGV[i + 1] and d.stage == STAGE.queued then
    set_stage(ARGV[i], d, STAGE.admitted, now)
    redis.call('ZADD', K.schedule, num(now + 1000), ARGV[i])
  end
end
return 1
