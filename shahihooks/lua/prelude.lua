-- The head of shahihooks' Redis function library (contract.py builds it: this, then each
-- script's body as a registered function): the key names (built with keys.py's patterns),
-- the settings every call shares, Redis's clock, and the steps several scripts take. It runs
-- once, when the library is loaded; each call begins with `setup(ARGV)`.
--
-- ARGV[1] holds the settings every call shares (contract.Common, in this order, joined by NUL:
-- one argument, not 15 to pass and compare on every call; `setup` names them C.<name>, the
-- prefix P):
--   prefix, lease_ms, grace_ms, limit (the default rate limit), window_ms, backlog_max,
--   done_ttl (s), log_max, stats_ttl (s), ceiling (attempts in flight to one endpoint),
--   threshold (failures in a row that open a circuit), cooldown_ms, cooldown_max_ms,
--   disable_ms (0: never), dead_ttl_ms (dead letters' retention)
-- A call's own arguments start at ARGV[A]: each script reads them as the locals that
-- contract.py declares for it (its layout), its variable part from ARGV[REST].
--
-- A delivery's record (`dlv`) and an endpoint's health (`ep`) are read and written by name:
-- F, STAGE and HF below mirror contract.Field, Stage and HealthField (their members in lower
-- case: d.url_tag, F.stage, STAGE.queued, HF.failures); Redis stores the short names. A
-- record's stages: queued (a message is in the broker), sending (an attempt holds it),
-- waiting for a retry, due for admission, admitted (due for a message), backlog (in its
-- URL's backlog). Its source is where its URL came from: "store", "urls" (SHAHIHOOKS_URLS),
-- "ops" (an operational event), "" (a webhook_urls filter, an action).
local A = 2
local P, C, K  -- this call's prefix, settings and keys (Redis runs one at a time)
-- A key's name: the prefix and up to three parts, joined by ':' (no table built per key).
local function key(a, b, c)
  if c then return P .. ':' .. a .. ':' .. b .. ':' .. c end
  if b then return P .. ':' .. a .. ':' .. b end
  return P .. ':' .. a
end
local SETUP = ''
local WIDE  -- '%d' writes 64-bit integers here (not on a 32-bit build): set by setup
local unwritten  -- the id of the record emit is making (set_stage writes it whole)

local function setup(argv)
  unwritten = nil
  if argv[1] == SETUP then return end  -- the same settings as the call before: kept
  local common = {}
  for part in string.gmatch(argv[1] .. '\0', '(%Z*)%z') do common[#common + 1] = part end
  P = common[1]
  C = {
    lease_ms = tonumber(common[2]), grace_ms = tonumber(common[3]),
    limit = tonumber(common[4]), window_ms = tonumber(common[5]),
    backlog_max = tonumber(common[6]), done_ttl = common[7], log_max = common[8],
    stats_ttl = common[9], ceiling = tonumber(common[10]), threshold = tonumber(common[11]),
    cooldown_ms = tonumber(common[12]), cooldown_max_ms = tonumber(common[13]),
    disable_ms = tonumber(common[14]), dead_ttl_ms = tonumber(common[15]),
  }
  K = {
    schedule = key('schedule'), releases = key('releases'), urls = key('urls'),
    endpoints = key('endpoints'), watermark = key('watermark'), log = key('log'),
    dead_index = key('dead'), retrying = key('retrying'), seq = key('seq'),
    wmhist = key('watermark', 'history'), ops = key('ops'), totals = key('totals'),
    unknown = key('unknown'),
  }
  WIDE = string.format('%d', 2 ^ 53) == '9007199254740992'
  SETUP = argv[1]  -- last: a call that failed above never leaves half of them kept
end

-- Lua's tostring() writes large numbers in exponent form: integers go through this (as
-- '%d', far cheaper in C than '%.0f'; a fraction is rounded). A number given to redis.call
-- is written by Redis with '%.17g' (as dear): the hot paths give text ('1', num(x)).
local function num(x)
  if WIDE and x % 1 == 0 and x > -1e15 and x < 1e15 then return string.format('%d', x) end
  return string.format('%.0f', x)
end
local function secs(ms) return string.format('%.3f', ms / 1000) end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local F = {
  message = 'm', url_tag = 'u', event = 'e', attempt = 'a', stage = 's', token = 'p',
  since = 't', order = 'o', window = 'w', checks = 'c', source = 'src', bugs = 'b',
  slot = 'sl', lost = 'l',
}
local STAGE = {
  queued = 'q', sending = 'x', waiting = 'w', due = 'n', admitted = 'r', backlog = 'b',
}
-- What record() reads, in F's order (the message first: every record has it).
local NAMES = {'message', 'url_tag', 'event', 'attempt', 'stage', 'token', 'since', 'order',
               'window', 'checks', 'source', 'bugs', 'slot', 'lost'}
local FIELDS = {}
for i = 1, #NAMES do FIELDS[i] = F[NAMES[i]] end
-- The record keyed by F's names (d.url_tag, d.stage, ...), '' for a field it lacks; or nil.
local function record(id)
  local v = redis.call('HMGET', key('dlv', id), unpack(FIELDS))
  if not v[1] then return nil end
  -- NAMES in order, in one constructor: the table is sized once (no rehash per field)
  return {message = v[1], url_tag = v[2] or '', event = v[3] or '', attempt = v[4] or '',
          stage = v[5] or '', token = v[6] or '', since = v[7] or '', order = v[8] or '',
          window = v[9] or '', checks = v[10] or '', source = v[11] or '', bugs = v[12] or '',
          slot = v[13] or '', lost = v[14] or ''}
end

-- Every stage change goes through here, so the per-URL count of waiting retries stays true.
-- It writes the token with the stage (to_queue's new one goes with `queued`), and the
-- fields given after `now` (field, value, ...): one HSET. The record emit is making
-- (`unwritten`) is written whole with its first stage, so a new delivery costs one HSET.
local function set_stage(id, d, stage, now, ...)
  local waited, waits = d.stage == STAGE.waiting, stage == STAGE.waiting
  if waits ~= waited then redis.call('HINCRBY', K.retrying, d.url_tag, waits and '1' or '-1') end
  local since = num(now)
  if id == unwritten then
    unwritten = nil
    redis.call('HSET', key('dlv', id), F.message, d.message, F.url_tag, d.url_tag,
      F.event, d.event, F.attempt, d.attempt, F.order, d.order, F.source, d.source,
      F.bugs, d.bugs, F.stage, stage, F.since, since, F.token, d.token, ...)
  else
    redis.call('HSET', key('dlv', id), F.stage, stage, F.since, since, F.token, d.token, ...)
  end
  d.stage, d.since = stage, since
end

-- The stats fields the Lua adds to "<url as shown> <event> " (logline.py names them).
local STAT = {count = 'n', ok = 'ok', ms = 'ms', deferred = 'def'}

local function shown_url(d) return redis.call('HGET', K.urls, d.url_tag .. ':shown') or '' end

-- A log entry written inside Lua: logline.LOG_FIELDS, in their order.
local function log_event(id, d, now, outcome, err, next_ms)
  redis.call('XADD', K.log, 'MAXLEN', '~', C.log_max, '*',
    'ts', secs(now), 'id', id, 'url', shown_url(d), 'event', d.event, 'attempt', d.attempt,
    'outcome', outcome, 'status', '', 'ms', '0', 'error', err,
    'next_s', next_ms and num(math.max(0, next_ms) / 1000) or '')
end

-- A body's `refs` counts what needs it: its live deliveries and its dead letters. The
-- last one to let go deletes it. `with`: a key that goes too (in the same DEL).
local function release_body(msg, count, with)
  local body = key('body', msg)
  local last = redis.call('HINCRBY', body, 'refs', count and -count or '-1') <= 0
  if last and with then
    redis.call('DEL', with, body)
  elseif last then
    redis.call('DEL', body)
  elseif with then
    redis.call('DEL', with)
  end
end

-- Delivered or dead: the record goes (a dead letter took its body reference first).
-- `freed`: its slot was given back already (finish does it first).
local function retire(id, d, mark, freed)
  if d.stage == STAGE.waiting then redis.call('HINCRBY', K.retrying, d.url_tag, '-1') end
  if d.stage == STAGE.backlog then redis.call('ZREM', key('backlog', d.url_tag), id) end
  redis.call('SET', key('done', id), mark, 'EX', C.done_ttl)
  redis.call('ZREM', K.schedule, id)
  if not freed then redis.call('ZREM', key('fly', d.url_tag), id) end  -- its slot, if any
  release_body(d.message, 1, key('dlv', id))
end

-- A dead letter goes (expired): with its reference on the body. A letter without `ref`
-- (written before bodies were shared) holds its own copy of the body's parts.
local function drop_letter(id)
  local letter = key('dead', id)
  local f = redis.call('HMGET', letter, 'msg', 'ref')
  redis.call('DEL', letter)
  redis.call('ZREM', K.dead_index, id)
  if f[1] and f[2] == '1' then release_body(f[1]) end
end

-- Operational events (endpoint.failing, ...) wait in `ops` until a worker sends them (and
-- runs the Python hooks); never about an operational endpoint itself, bounded in number.
local OPS_MAX = 10000
local ops_added = false  -- by this call (a script that reports it resets it first)
local function ops_event(kind, tag, now, data)
  if redis.call('HLEN', K.ops) >= OPS_MAX then return end
  ops_added = true
  data.url = redis.call('HGET', K.urls, tag .. ':shown') or ''
  local id = kind .. ':' .. tag .. ':' .. num(now) .. ':' .. redis.call('INCR', K.seq)
  redis.call('HSET', K.ops, id, cjson.encode({event = kind, at_ms = num(now), data = data}))
end

-- The dead letter shares the delivery's body (`ref`: it holds one of the body's `refs`, so
-- one large event dead at 20 URLs is stored once), and keeps the URL as shown (credentials
-- masked): its tag finds the URL itself in `urls`. `off`: it died because its endpoint is
-- disabled (`endpoints enable --recover` replays those). It expires after dead_ttl_ms
-- (claim.lua), by its time of death in the index.
local function dead_letter(id, d, now, reason, status, response, off)
  local has_body = redis.call('EXISTS', key('body', d.message)) == 1
  drop_letter(id)  -- an earlier letter of this delivery (not replayed): replaced
  if has_body then redis.call('HINCRBY', key('body', d.message), 'refs', 1) end
  redis.call('HSET', key('dead', id), 'id', id, 'msg', d.message, 'url', shown_url(d),
    'tag', d.url_tag, 'event', d.event, 'attempts', d.attempt, 'reason', reason,
    'status', status, 'died_at', secs(now), 'has_body', has_body and '1' or '0',
    'ref', has_body and '1' or '', 'response', response, 'src', d.source, 'o', d.order,
    'off', off and '1' or '')
  redis.call('ZADD', K.dead_index, secs(now), id)
  if d.source ~= 'ops' and not off then
    ops_event('delivery.dead', d.url_tag, now, {delivery_id = id, event = d.event,
      attempts = tonumber(d.attempt), reason = reason, status = status})
  end
  retire(id, d, 'dead')
end

local function limit_of(url)
  if not url then return C.limit end
  if string.sub(url, 1, 7) == 'action:' then return 0 end
  local raw = redis.call('HGET', K.endpoints, url)
  if raw then
    local ok, e = pcall(cjson.decode, raw)
    if ok and type(e) == 'table' and type(e['rate_limit']) == 'number' then
      return e['rate_limit']
    end
  end
  return C.limit
end

local function window_of(now) return num(math.floor(now / C.window_ms)) end
local function next_window(now) return (math.floor(now / C.window_ms) + 1) * C.window_ms end

-- A slot in the URL's current window when the limit allows and nobody waits in its backlog:
-- the window (text), '' for a URL without a limit, or nil.
local function admit(tag, limit, now)
  if limit <= 0 then return '' end
  local win = window_of(now)
  local rate = key('rate', tag, win)
  if redis.call('EXISTS', key('backlog', tag)) == 1 then
    -- others wait first; if the window has room (a raised limit), release them now
    if (tonumber(redis.call('GET', rate)) or 0) < limit then
      redis.call('ZADD', K.releases, 'LT', num(now), tag)
    end
    return nil
  end
  local used = redis.call('INCR', rate)
  if used - 1 >= limit then  -- it was full: the slot given back
    redis.call('DECR', rate)
    return nil
  end
  -- it outlives its window by one at least (begin gives back a slot of the window before)
  if used == 1 then redis.call('PEXPIRE', rate, 2 * C.window_ms) end
  return win
end

-- Wait in the URL's backlog, in emit order, to be released at `due` at the earliest;
-- false when it is full. `why` says what holds it back.
local function to_backlog(id, d, now, due, why)
  local backlog = key('backlog', d.url_tag)
  if redis.call('ZCARD', backlog) >= C.backlog_max then return false end
  redis.call('ZADD', backlog, d.order, id)
  redis.call('ZREM', K.schedule, id)
  redis.call('ZREM', key('fly', d.url_tag), id)  -- a slot it held goes to whoever is released
  if d.slot ~= '' then redis.call('HSET', key('dlv', id), F.slot, '') end
  set_stage(id, d, STAGE.backlog, now)
  redis.call('ZADD', K.releases, 'LT', num(due), d.url_tag)
  local ahead = redis.call('ZRANK', backlog, id)
  log_event(id, d, now, 'deferred', why .. ': waits in the backlog (' .. ahead .. ' ahead)',
    due - now)
  local stats = key('stats', num(math.floor(now / 3600000)))
  redis.call('HINCRBY', stats, shown_url(d) .. ' ' .. d.event .. ' ' .. STAT.deferred, 1)
  redis.call('EXPIRE', stats, C.stats_ttl)
  return true
end

local function rate_wait(id, d, now, limit)
  local used = tonumber(redis.call('GET', key('rate', d.url_tag, window_of(now)))) or 0
  local due = now
  if limit > 0 and used >= limit then due = next_window(now) end
  return to_backlog(id, d, now, due, 'rate limit of ' .. limit .. ' per '
    .. num(C.window_ms / 1000) .. ' s reached')
end

-- A new message for the delivery: a new fencing token, and a check that it is not lost.
-- `...`: more fields to write with them (field, value, ...). `d` is the record as it is.
local function to_queue(id, d, now, ...)
  d.token = num((tonumber(d.token) or 0) + 1)
  set_stage(id, d, STAGE.queued, now, F.checks, '0', ...)
  redis.call('ZADD', K.schedule, num(now + C.grace_ms), id)
  return d.token
end

local BACKLOG_FULL = 'backlog full: SHAHIHOOKS_BACKLOG_MAX deliveries already wait for this URL'

local function dead_now(id, d, now, reason, off)
  log_event(id, d, now, 'dead', reason, nil)
  dead_letter(id, d, now, reason, '', '', off)
  return 'dead'
end

-- An endpoint's health ({p}:ep:{tag}), shared by every worker, read and written by the
-- names of HF (contract.HealthField says what each holds). Its limit on attempts in flight
-- adapts like TCP's congestion window: a float, growing by one per success below slow_start
-- and by 1/limit above, up to its ceiling (the endpoint's own, else C.ceiling); halved when
-- the endpoint is congested. The attempts in flight are `fly`: delivery ids scored by when
-- their slot lapses.
local HF = {
  limit = 'cw', slow_start = 'ss', ceiling = 'max', failures = 'cf', open_until = 'open',
  openings = 'opens', probe = 'probe', probe_until = 'pu', failing_since = 'fs',
  disabled_since = 'off', disabled_reason = 'why', quiet = 'quiet', last_error = 'err',
  last_attempt = 'at', last_success = 'ok',
}
local INITIAL_LIMIT = 2
-- What health() reads, in the order of its locals.
local HEALTH = {HF.limit, HF.slow_start, HF.ceiling, HF.failures, HF.open_until, HF.openings,
                HF.probe, HF.probe_until, HF.failing_since, HF.disabled_since,
                HF.disabled_reason, HF.quiet}
-- An endpoint's health by HF's names, as numbers (failing_since and disabled_since: nil
-- when not), with their defaults.
local function health(tag)
  local limit, slow_start, ceiling, failures, open_until, openings, probe, probe_until,
        failing_since, disabled_since, disabled_reason, quiet =
    unpack(redis.call('HMGET', key('ep', tag), unpack(HEALTH)))
  ceiling = tonumber(ceiling) or C.ceiling
  return {
    ceiling = ceiling, limit = math.min(tonumber(limit) or INITIAL_LIMIT, ceiling),
    slow_start = tonumber(slow_start) or ceiling, failures = tonumber(failures) or 0,
    open_until = tonumber(open_until) or 0, openings = tonumber(openings) or 0,
    probe = probe or '', probe_until = tonumber(probe_until) or 0,
    failing_since = tonumber(failing_since), disabled_since = tonumber(disabled_since),
    disabled_reason = disabled_reason or '', quiet = quiet == '1',
  }
end

local function in_flight(tag, now)
  local fly = key('fly', tag)
  redis.call('ZREMRANGEBYSCORE', fly, '-inf', num(now))
  return redis.call('ZCARD', fly)
end

local function disabled_reason(h)
  return 'endpoint disabled (since ' .. secs(h.disabled_since) .. '): ' .. h.disabled_reason
end

local function circuit_reason(h, now)
  return 'circuit open after ' .. h.failures .. ' failures in a row (next probe in '
    .. num(math.max(0, math.max(h.open_until, h.probe_until) - now) / 1000) .. ' s)'
end

-- While the circuit is open, and while its probe is out, nothing else is attempted.
local function held_by_circuit(h, id, now)
  return h.open_until > 0
    and (now < h.open_until or (h.probe_until > now and h.probe ~= id))
end

local function disable(tag, now, why, quiet)
  redis.call('HSET', key('ep', tag), HF.disabled_since, num(now), HF.disabled_reason, why)
  redis.call('ZADD', K.releases, num(now), tag)  -- its backlog is dead-lettered now
  if not quiet then ops_event('endpoint.disabled', tag, now, {reason = why}) end
end

-- Failing without a success for SHAHIHOOKS_DISABLE_AFTER: disabled (true if it is now).
local function disable_if_failing_too_long(tag, h, now, last)
  local since = h.failing_since
  if C.disable_ms <= 0 or not since or now - since < C.disable_ms then return false end
  local why = 'only failures since ' .. secs(since) .. ' (more than SHAHIHOOKS_DISABLE_AFTER='
    .. num(C.disable_ms / 1000) .. ' s)' .. (last ~= '' and ('; last: ' .. last) or '')
  disable(tag, now, why, h.quiet)
  h.disabled_since, h.disabled_reason = now, why
  return true
end

-- A slot reserved for a delivery released from the backlog, whose message has not begun (it
-- waits behind the queue), goes to the delivery beginning now: the endpoint's slots serve the
-- head of the queue instead of idling until the released messages reach it (with a deep
-- queue, every message ahead of them was deferred, and the limit, which grows only with
-- successes, stayed where it was). The released delivery loses its grant: when its message
-- begins it takes a free slot, or waits again at its place in the backlog. True if taken.
local function take_reserved(tag, now)
  local held, fly = key('held', tag), key('fly', tag)
  for _ = 1, 8 do  -- an entry that began or went is skipped (they are few: one per release)
    local head = redis.call('ZPOPMIN', held)
    if #head == 0 then return false end
    local id, lapse = head[1], tonumber(head[2])
    if lapse > now and redis.call('HGET', key('dlv', id), F.slot) == '1'
        and redis.call('ZREM', fly, id) == 1 then
      redis.call('HSET', key('dlv', id), F.slot, '')
      return true
    end
  end
  return false
end

-- May an attempt of `id` to its endpoint start now? nil if so (it holds a slot), else what
-- holds it back: 'disabled', 'open' (the circuit) or 'limit' (attempts in flight). A
-- delivery released from the backlog was given its slot (`slot`: '1', or 'probe'): it goes,
-- however long its message waited in the queue (its reservation may have lapsed meanwhile),
-- unless a delivery that began before it took its reserved slot (take_reserved).
local function gate(id, d, h, now)
  if h.disabled_since then return 'disabled' end
  local granted = d.slot
  if granted ~= '' then redis.call('HSET', key('dlv', id), F.slot, '') end
  local fly = key('fly', d.url_tag)
  local lapse = num(now + C.lease_ms)
  if granted == 'probe' or (h.open_until > 0 and not held_by_circuit(h, id, now)) then
    redis.call('HSET', key('ep', d.url_tag), HF.probe, id, HF.probe_until, lapse)  -- the probe
  elseif held_by_circuit(h, id, now) then
    return 'open'
  elseif granted == '' then
    -- its slot taken at once (one call when it held one already); with it counted, is it
    -- within the limit?
    if redis.call('ZADD', fly, lapse, id) == 1
        and in_flight(d.url_tag, now) > math.floor(h.limit)
        and not take_reserved(d.url_tag, now) then
      redis.call('ZREM', fly, id)
      return 'limit'
    end
    return nil
  end
  if granted == '1' then redis.call('ZREM', key('held', d.url_tag), id) end
  redis.call('ZADD', fly, lapse, id)
  return nil
end

-- When a slot of a full endpoint frees up at the latest (a lapse), for its backlog's release.
local function next_lapse(tag, now)
  local head = redis.call('ZRANGE', key('fly', tag), 0, 0, 'WITHSCORES')
  return head[2] and tonumber(head[2]) or now + 1000
end

-- Held back by the endpoint's health: waits in its backlog (or dies: disabled, or full).
-- Returns 'deferred' or 'dead', and the reason.
local function hold(id, d, now, h, why)
  if why == 'disabled' then
    local reason = disabled_reason(h)
    return dead_now(id, d, now, reason, true), reason
  end
  if why == 'open' and disable_if_failing_too_long(d.url_tag, h, now, '') then
    return hold(id, d, now, h, 'disabled')
  end
  local due, reason
  if why == 'open' then
    due, reason = math.max(h.open_until, h.probe_until), circuit_reason(h, now)
    -- looked at again when it is due to be disabled, if that comes first
    if C.disable_ms > 0 and h.failing_since then
      due = math.min(due, h.failing_since + C.disable_ms)
    end
  else
    due = next_lapse(d.url_tag, now)
    reason = 'the endpoint\'s limit of ' .. math.floor(h.limit)
      .. ' attempts in flight is reached'
  end
  if to_backlog(id, d, now, due, reason) then return 'deferred', reason end
  return dead_now(id, d, now, BACKLOG_FULL), BACKLOG_FULL
end

local function cooldown(openings)
  return math.min(C.cooldown_ms * 2 ^ (openings - 1), C.cooldown_max_ms)
end

-- After an attempt, the endpoint learns from it: `signal` is 'ok', 'congested' (a timeout,
-- a connection error, 5xx, 429: the limit halves) or 'failed' (any other failure). The
-- limit grows slowly on success; failures in a row open the circuit; failing for
-- `disable_ms` without a success disables the endpoint. Returns true if it is disabled;
-- else false, and whether its backlog has deliveries waiting.
local function learn(id, d, now, signal, reason)
  local tag = d.url_tag
  local ep = key('ep', tag)
  redis.call('ZREM', key('fly', tag), id)
  local h = health(tag)
  if d.source == 'ops' and not h.quiet then
    redis.call('HSET', ep, HF.quiet, '1')
    h.quiet = true
  end
  local quiet = h.quiet
  if h.disabled_since then return true end
  if signal == 'ok' then
    local limit = h.limit < h.slow_start and h.limit + 1 or h.limit + 1 / h.limit
    local at = num(now)
    redis.call('HSET', ep, HF.limit, tostring(math.min(limit, h.ceiling)), HF.failures, '0',
      HF.last_success, at, HF.last_attempt, at)
    if h.failing_since then redis.call('HDEL', ep, HF.failing_since) end
    if h.open_until > 0 then
      redis.call('HSET', ep, HF.open_until, 0, HF.openings, 0, HF.probe, '', HF.probe_until, 0)
      if not quiet then
        ops_event('endpoint.recovered', tag, now,
          {failing_since = h.failing_since and secs(h.failing_since) or ''})
      end
    end
  else
    local set = {HF.failures, h.failures + 1, HF.last_error, reason, HF.last_attempt, num(now)}
    if not h.failing_since then
      h.failing_since = now
      set[#set + 1], set[#set + 2] = HF.failing_since, num(now)
    end
    if signal == 'congested' then
      local half = tostring(math.max(1, h.limit / 2))
      set[#set + 1], set[#set + 2], set[#set + 3], set[#set + 4] =
        HF.limit, half, HF.slow_start, half
    end
    local openings
    if h.open_until > 0 and h.probe == id then openings = h.openings + 1  -- the probe failed
    elseif h.open_until == 0 and h.failures + 1 >= C.threshold then openings = 1 end
    if openings then
      for _, x in ipairs({HF.open_until, num(now + cooldown(openings)), HF.openings, openings,
                          HF.probe, '', HF.probe_until, 0}) do set[#set + 1] = x end
    end
    redis.call('HSET', ep, unpack(set))
    if openings == 1 and not quiet then
      ops_event('endpoint.failing', tag, now, {consecutive_failures = h.failures + 1,
        failing_since = secs(h.failing_since), last_error = reason,
        next_probe_at = secs(now + cooldown(1))})
    end
    if disable_if_failing_too_long(tag, h, now, reason) then return true end
  end
  local waiting = redis.call('EXISTS', key('backlog', tag)) == 1
  if waiting then redis.call('ZADD', K.releases, 'LT', num(now), tag) end
  return false, waiting
end

-- Queue the delivery if its endpoint's health and its URL's rate limit allow, else its
-- backlog, else (full, or disabled) dead letter.
-- Returns 'queued' and the message's token, 'deferred' or 'dead'.
local function admit_or_wait(id, d, now, limit)
  local h = health(d.url_tag)
  if h.disabled_since then return (hold(id, d, now, h, 'disabled')) end
  if held_by_circuit(h, id, now) then return (hold(id, d, now, h, 'open')) end
  local win = admit(d.url_tag, limit, now)
  if win then return 'queued', to_queue(id, d, now, F.window, win) end
  if rate_wait(id, d, now, limit) then return 'deferred' end
  return dead_now(id, d, now, BACKLOG_FULL)
end

-- A message the caller publishes: id, token, attempt, event, url (as shown).
local function message(out, id, d, token)
  out[#out + 1] = id
  out[#out + 1] = tostring(token)
  out[#out + 1] = d.attempt
  out[#out + 1] = d.event
  out[#out + 1] = shown_url(d)
end

-- Release what an endpoint's backlog may send now, oldest first, at most `budget` (adding
-- their messages to `out`): what its URL's rate window and its endpoint's health allow — up
-- to the free slots of its limit on attempts in flight (each released delivery holds its
-- slot until it begins or the slot lapses), one probe once an open circuit's cool-down is
-- over, nothing while the circuit is open; a disabled endpoint's backlog is dead-lettered.
-- Then when to look at it again. Returns how many entries it handled.
local HANDOFF_MAX = 4  -- what one finished attempt releases at most (the mover, the rest)
local function release(tag, now, budget, out)
  local backlog = key('backlog', tag)
  local url = redis.call('HGET', K.urls, tag)
  local limit = limit_of(url)
  local h = health(tag)
  local rate = key('rate', tag, window_of(now))
  local room, later = budget, nil
  if limit > 0 then
    room = math.min(room, limit - (tonumber(redis.call('GET', rate)) or 0))
  end
  local probe = false
  if not h.disabled_since and h.open_until > 0 then
    disable_if_failing_too_long(tag, h, now, '')
  end
  if h.disabled_since then
    room = budget  -- a disabled endpoint's backlog is dead-lettered, whatever its rate
  elseif not url or string.sub(url, 1, 7) == 'action:' then
    -- an action has no health to weigh
  elseif h.open_until > 0 then
    if now < h.open_until or h.probe_until > now then
      room, later = 0, math.max(h.open_until, h.probe_until)
      if C.disable_ms > 0 and h.failing_since then
        later = math.min(later, h.failing_since + C.disable_ms)
      end
    else
      room, probe = math.min(room, 1), true
    end
  else
    local free = math.floor(h.limit) - in_flight(tag, now)
    if free < room then room, later = math.max(0, free), next_lapse(tag, now) end
  end
  local released = 0
  while released < room do
    local head = redis.call('ZPOPMIN', backlog)
    if #head == 0 then break end
    local id = head[1]
    local d = record(id)
    if d and d.stage == STAGE.backlog then
      if h.disabled_since then
        dead_now(id, d, now, disabled_reason(h), true)
      else
        if limit > 0 and redis.call('INCR', rate) == 1 then
          redis.call('PEXPIRE', rate, 2 * C.window_ms)
        end
        local lapse = num(now + C.grace_ms + C.lease_ms)
        if probe then
          redis.call('HSET', key('ep', tag), HF.probe, id, HF.probe_until, lapse)
        end
        redis.call('ZADD', key('fly', tag), lapse, id)
        if not probe then  -- a reservation a delivery beginning first may take
          redis.call('ZADD', key('held', tag), lapse, id)
          redis.call('PEXPIRE', key('held', tag), C.grace_ms + C.lease_ms)
        end
        message(out, id, d, to_queue(id, d, now, F.window, limit > 0 and window_of(now) or '',
                                      F.slot, probe and 'probe' or '1'))
      end
      released = released + 1
    end
  end
  if redis.call('EXISTS', backlog) == 1 then
    local full = limit > 0 and (tonumber(redis.call('GET', rate)) or 0) >= limit
    local at = full and next_window(now) or now
    if not full and later then at = later end
    redis.call('ZADD', K.releases, num(at), tag)
  else
    redis.call('ZREM', K.releases, tag)
  end
  return released
end
