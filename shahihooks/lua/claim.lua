-- The mover's step (every worker runs one; each entry is claimed by exactly one of them):
-- the deliveries whose time has come get a message, and backlogs release what their
-- URL's window allows, oldest first. The caller publishes the returned messages.
--   waiting retry, due admission, lease expired (the attempt's worker died): admitted
--     (queued, or to the backlog when the URL's window is full)
--   admitted, unpublished: queued
--   queued (looked at a grace period after it was published): is its message lost? Once
--     a message published later has been taken, or the queue was seen empty (the
--     watermark), this one has left the queue too; if it has not begun a grace period after
--     that, the worker that took it died before recording it: a new message. Otherwise it
--     still waits its turn: looked at again, less and less often.
--   dead letters older than their retention (dead_ttl_ms): gone, with their body reference
--     (a few per step: a step stays short however many expire at once)
-- Arguments (contract.ClaimArgs): budget (entries handled at most)
-- Returns {ms until the next entry is due, operational events waiting to be sent,
--          then per message: id, token, attempt, event, url}
budget = tonumber(budget)
local LOST_MAX = 5
local EXPIRE_MAX = 100
local now = now_ms()

for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.dead_index, '-inf',
                               secs(now - C.dead_ttl_ms), 'LIMIT', 0, EXPIRE_MAX)) do
  drop_letter(id)
end

-- The watermark's history: when it passed each value (a queued message's check reads it).
local wm = tonumber(redis.call('ZSCORE', K.watermark, 'ms'))
if wm then
  local last = redis.call('ZRANGE', K.wmhist, -1, -1, 'WITHSCORES')
  if not last[2] or tonumber(last[2]) < wm then
    redis.call('ZADD', K.wmhist, num(wm), num(now))
    redis.call('ZREMRANGEBYSCORE', K.wmhist, '-inf', num(now - 4 * C.grace_ms))
  end
end
local out = {}

-- Backlogs first: a due delivery then finds the room they leave (or their place).
local tags = redis.call('ZRANGEBYSCORE', K.releases, '-inf', num(now), 'LIMIT', 0, budget)
for _, tag in ipairs(tags) do
  budget = math.max(0, budget - release(tag, now, budget, out))
end

local due = redis.call('ZRANGEBYSCORE', K.schedule, '-inf', num(now), 'LIMIT', 0,
                     math.max(1, budget))
for _, id in ipairs(due) do
  local d = record(id)
  if not d then
    redis.call('ZREM', K.schedule, id)
  elseif d.stage == STAGE.waiting or d.stage == STAGE.due or d.stage == STAGE.sending then
    if d.stage == STAGE.sending then
      log_event(id, d, now, 'retry', 'the attempt did not finish within its lease '
        .. '(its worker stopped?): sent again', 0)
    end
    local url = redis.call('HGET', K.urls, d.url_tag)
    local verdict, token = admit_or_wait(id, d, now, limit_of(url))
    if verdict == 'queued' then message(out, id, d, token) end
  elseif d.stage == STAGE.admitted then
    message(out, id, d, to_queue(id, d, now))
  elseif d.stage == STAGE.queued then
    -- when the watermark first passed it: from then on, its message was out of the queue
    local passed = redis.call('ZRANGEBYSCORE', K.wmhist, '(' .. d.since, '+inf', 'LIMIT', 0, 1)[1]
    if passed and now - tonumber(passed) >= C.grace_ms then
      local lost = redis.call('HINCRBY', key('dlv', id), F.lost, 1)
      if lost > LOST_MAX then  -- no worker can read its messages (their accept_content?)
        dead_now(id, d, now, 'its message was lost ' .. LOST_MAX .. ' times: do the workers '
          .. 'accept what the apps publish (task_serializer, accept_content)?')
      else
        log_event(id, d, now, 'retry', 'its message was lost (taken by a worker that stopped '
          .. 'before recording it): sent again', 0)
        message(out, id, d, to_queue(id, d, now))
      end
    elseif passed then
      redis.call('ZADD', K.schedule, num(tonumber(passed) + C.grace_ms), id)
    else  -- still waiting its turn in the queue: looked at again, less and less often
      local checks = redis.call('HINCRBY', key('dlv', id), F.checks, 1)
      redis.call('ZADD', K.schedule, num(now + C.grace_ms * math.min(2 ^ checks, 8)), id)
    end
  else  -- in a backlog: released from there
    redis.call('ZREM', K.schedule, id)
  end
end

local soonest = now + 60000
for _, z in ipairs({K.schedule, K.releases}) do
  local head = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if head[2] then soonest = math.min(soonest, tonumber(head[2])) end
end
table.insert(out, 1, redis.call('HLEN', K.ops))
table.insert(out, 1, num(math.max(0, soonest - now)))
return out
