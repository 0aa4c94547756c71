-- The head of shahihooks' Redis function library (contract.py builds it: this, then each
-- script's body as a registered function): the key names (built with keys.py's patterns),
-- the settings every call shares, Redis's clock, and the steps several scripts take. It runs
-- once, when the library is loaded; each call begins with `setup(ARGV)`.
--
-- ARGV[1..A-1] are the same for every call (contract.Common, in this order; `setup` names
-- them C.<name>, the prefix P):
--   prefix, lease_ms, grace_ms, default_limit, window_ms, backlog_max, done_ttl_s,
--   log_max_len, stats_ttl_s, concurrency ceiling, circuit threshold, cooldown_ms,
--   cooldown_max_ms, disable_after_ms (0: never), dead_ttl_ms (dead letters' retention)
-- A call's own arguments start at ARGV[A]: each script reads them as the locals that
-- contract.py declares for it (its layout), its variable part from ARGV[REST].
--
-- A delivery's record (`dlv`) fields (contract.Field names them; FIELDS below, in its order):
--   m message id   u url tag   e event   a attempt   p fencing token of its live message
--   s state: q queued (a message is in the broker)   x sending (an attempt holds it)
--            w waiting for a retry   n due for admission   r admitted, due for a message
--            b in its URL's backlog
--   t when the state was entered (ms)   o emit order   w the rate window it was admitted in
--   c checks of a queued message
--   src where its URL came from: "store", "urls" (SHAHIHOOKS_URLS), "ops" (an operational
--       event), "" (a webhook_urls filter, an action)
--   b attempts that hit a bug   l messages of it found lost
local A = 16
local P, C, K  -- this call's prefix, settings and keys (Redis runs one at a time)
local function key(...) return table.concat({P, ...}, ':') end
local SETUP = ''

local function setup(argv)
  local common = table.concat(argv, '\0', 1, A - 1)
  if common == SETUP then return end  -- the same settings as the call before: kept
  SETUP, P = common, argv[1]
  C = {
    lease_ms = tonumber(argv[2]), grace_ms = tonumber(argv[3]), limit = tonumber(argv[4]),
    window_ms = tonumber(argv[5]), backlog_max = tonumber(argv[6]), done_ttl = argv[7],
    log_max = argv[8], stats_ttl = argv[9], ceiling = tonumber(argv[10]),
    threshold = tonumber(argv[11]), cooldown_ms = tonumber(argv[12]),
    cooldown_max_ms = tonumber(argv[13]), disable_ms = tonumber(argv[14]),
    dead_ttl_ms = tonumber(argv[15]),
  }
  K = {
    schedule = key('schedule'), releases = key('releases'), urls = key('urls'),
    endpoints = key('endpoints'), watermark = key('watermark'), log = key('log'),
    dead_index = key('dead'), retrying = key('retrying'), seq = key('seq'),
    wmhist = key('watermark', 'history'), ops = key('ops'), totals = key('totals'),
    unknown = key('unknown'),
  }
end

-- Lua's tostring() writes large numbers in exponent form: integers go through this.
local function num(x) return string.format('%.0f', x) end
local function secs(ms) return string.format('%.3f', ms / 1000) end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local FIELDS = {'m', 'u', 'e', 'a', 's', 'p', 't', 'o', 'w', 'c', 'src', 'b', 'sl', 'l'}
local function record(id)
  local v = redis.call('HMGET', key('dlv', id), unpack(FIELDS))
  if not v[1] then return nil end
  local d = {}
  for i, f in ipairs(FIELDS) do d[f] = v[i] or '' end
  return d
end

-- Every state change goes through here, so the per-URL count of waiting retries stays true.
local function set_state(id, d, s, now)
  if d.s == 'w' and s ~= 'w' then redis.call('HINCRBY', K.retrying, d.u, -1) end
  if s == 'w' and d.s ~= 'w' then redis.call('HINCRBY', K.retrying, d.u, 1) end
  redis.call('HSET', key('dlv', id), 's', s, 't', num(now))
  d.s, d.t = s, num(now)
end

-- The stats fields the Lua adds to "<url as shown> <event> " (logline.py names them).
local STAT = {count = 'n', ok = 'ok', ms = 'ms', deferred = 'def'}

local function shown_url(d) return redis.call('HGET', K.urls, d.u .. ':shown') or '' end

-- A log entry written inside Lua: logline.LOG_FIELDS, in their order.
local function log_event(id, d, now, outcome, err, next_ms)
  redis.call('XADD', K.log, 'MAXLEN', '~', C.log_max, '*',
    'ts', secs(now), 'id', id, 'url', shown_url(d), 'event', d.e, 'attempt', d.a,
    'outcome', outcome, 'status', '', 'ms', '0', 'error', err,
    'next_s', next_ms and num(math.max(0, next_ms) / 1000) or '')
end

-- A body's `refs` counts what needs it: its live deliveries and its dead letters. The
-- last one to let go deletes it.
local function release_body(msg, count)
  local body = key('body', msg)
  if redis.call('HINCRBY', body, 'refs', -(count or 1)) <= 0 then redis.call('DEL', body) end
end

-- Delivered or dead: the record goes (a dead letter took its body reference first).
local function retire(id, d, mark)
  if d.s == 'w' then redis.call('HINCRBY', K.retrying, d.u, -1) end
  if d.s == 'b' then redis.call('ZREM', key('backlog', d.u), id) end
  redis.call('SET', key('done', id), mark, 'EX', C.done_ttl)
  redis.call('DEL', key('dlv', id))
  redis.call('ZREM', K.schedule, id)
  redis.call('ZREM', key('fly', d.u), id)  -- its slot, if it held one
  release_body(d.m)
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
  local has_body = redis.call('EXISTS', key('body', d.m)) == 1
  drop_letter(id)  -- an earlier letter of this delivery (not replayed): replaced
  if has_body then redis.call('HINCRBY', key('body', d.m), 'refs', 1) end
  redis.call('HSET', key('dead', id), 'id', id, 'msg', d.m, 'url', shown_url(d),
    'tag', d.u, 'event', d.e, 'attempts', d.a, 'reason', reason, 'status', status,
    'died_at', secs(now), 'has_body', has_body and '1' or '0', 'ref', has_body and '1' or '',
    'response', response, 'src', d.src, 'o', d.o, 'off', off and '1' or '')
  redis.call('ZADD', K.dead_index, secs(now), id)
  if d.src ~= 'ops' and not off then
    ops_event('delivery.dead', d.u, now, {delivery_id = id, event = d.e,
      attempts = tonumber(d.a), reason = reason, status = status})
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
  local full = (tonumber(redis.call('GET', rate)) or 0) >= limit
  if redis.call('EXISTS', key('backlog', tag)) == 1 then
    -- others wait first; if the window has room (a raised limit), release them now
    if not full then redis.call('ZADD', K.releases, 'LT', num(now), tag) end
    return nil
  end
  if full then return nil end
  redis.call('INCR', rate)
  redis.call('PEXPIRE', rate, 2 * C.window_ms)
  return win
end

-- Wait in the URL's backlog, in emit order, to be released at `due` at the earliest;
-- false when it is full. `why` says what holds it back.
local function to_backlog(id, d, now, due, why)
  local backlog = key('backlog', d.u)
  if redis.call('ZCARD', backlog) >= C.backlog_max then return false end
  redis.call('ZADD', backlog, d.o, id)
  redis.call('ZREM', K.schedule, id)
  redis.call('ZREM', key('fly', d.u), id)  -- a slot it held goes to whoever is released
  if d.sl ~= '' then redis.call('HSET', key('dlv', id), 'sl', '') end
  set_state(id, d, 'b', now)
  redis.call('ZADD', K.releases, 'LT', num(due), d.u)
  local ahead = redis.call('ZRANK', backlog, id)
  log_event(id, d, now, 'deferred', why .. ': waits in the backlog (' .. ahead .. ' ahead)',
    due - now)
  local stats = key('stats', num(math.floor(now / 3600000)))
  redis.call('HINCRBY', stats, shown_url(d) .. ' ' .. d.e .. ' ' .. STAT.deferred, 1)
  redis.call('EXPIRE', stats, C.stats_ttl)
  return true
end

local function rate_wait(id, d, now, limit)
  local used = tonumber(redis.call('GET', key('rate', d.u, window_of(now)))) or 0
  local due = now
  if limit > 0 and used >= limit then due = next_window(now) end
  return to_backlog(id, d, now, due, 'rate limit of ' .. limit .. ' per '
    .. num(C.window_ms / 1000) .. ' s reached')
end

-- A new message for the delivery: a new fencing token, and a check that it is not lost.
local function to_queue(id, d, now)
  local token = redis.call('HINCRBY', key('dlv', id), 'p', 1)
  redis.call('HSET', key('dlv', id), 'c', '0')
  set_state(id, d, 'q', now)
  redis.call('ZADD', K.schedule, num(now + C.grace_ms), id)
  return token
end

local BACKLOG_FULL = 'backlog full: SHAHIHOOKS_BACKLOG_MAX deliveries already wait for this URL'

local function dead_now(id, d, now, reason, off)
  log_event(id, d, now, 'dead', reason, nil)
  dead_letter(id, d, now, reason, '', '', off)
  return 'dead'
end

-- An endpoint's health ({p}:ep:{tag}), shared by every worker:
--   cw    the limit on attempts in flight (a float: it grows by fractions)
--   ss    below it the limit grows by one per success (slow start), above by 1/cw
--   max   the endpoint's own ceiling (`endpoints add --concurrency`), else C.ceiling
--   cf    consecutive failures          open  circuit open until (ms; 0: closed)
--   opens openings in a row (the cool-down doubles with each)
--   probe the delivery sent while half-open, pu until when it counts as the probe (ms)
--   fs    failing since (ms)            ok    the last success (ms)
--   off   disabled since (ms)           why   why it was disabled
--   err   the last failure's reason     at    the last attempt's end (ms)
--   quiet '1' for an operational endpoint: no operational event is ever about it
-- The attempts in flight are `fly`: delivery ids scored by when their slot lapses.
local INITIAL_WINDOW = 2
local HF = {'cw', 'ss', 'max', 'cf', 'open', 'opens', 'probe', 'pu', 'fs', 'off', 'why',
            'quiet'}
local function health(tag)
  local v = redis.call('HMGET', key('ep', tag), unpack(HF))
  local ceiling = tonumber(v[3]) or C.ceiling
  return {
    ceiling = ceiling, cw = math.min(tonumber(v[1]) or INITIAL_WINDOW, ceiling),
    ss = tonumber(v[2]) or ceiling, cf = tonumber(v[4]) or 0, open = tonumber(v[5]) or 0,
    opens = tonumber(v[6]) or 0, probe = v[7] or '', pu = tonumber(v[8]) or 0,
    fs = tonumber(v[9]), off = tonumber(v[10]), why = v[11] or '', quiet = v[12] == '1',
  }
end

local function in_flight(tag, now)
  local fly = key('fly', tag)
  redis.call('ZREMRANGEBYSCORE', fly, '-inf', num(now))
  return redis.call('ZCARD', fly)
end

local function disabled_reason(h)
  return 'endpoint disabled (since ' .. secs(h.off) .. '): ' .. h.why
end

local function circuit_reason(h, now)
  return 'circuit open after ' .. h.cf .. ' failures in a row (next probe in '
    .. num(math.max(0, math.max(h.open, h.pu) - now) / 1000) .. ' s)'
end

-- While the circuit is open, and while its probe is out, nothing else is attempted.
local function held_by_circuit(h, id, now)
  return h.open > 0 and (now < h.open or (h.pu > now and h.probe ~= id))
end

local function disable(tag, now, why, quiet)
  redis.call('HSET', key('ep', tag), 'off', num(now), 'why', why)
  redis.call('ZADD', K.releases, num(now), tag)  -- its backlog is dead-lettered now
  if not quiet then ops_event('endpoint.disabled', tag, now, {reason = why}) end
end

-- Failing without a success for SHAHIHOOKS_DISABLE_AFTER: disabled (true if it is now).
local function disable_if_failing_too_long(tag, h, now, last)
  if C.disable_ms <= 0 or not h.fs or now - h.fs < C.disable_ms then return false end
  local why = 'only failures since ' .. secs(h.fs) .. ' (more than SHAHIHOOKS_DISABLE_AFTER='
    .. num(C.disable_ms / 1000) .. ' s)' .. (last ~= '' and ('; last: ' .. last) or '')
  disable(tag, now, why, h.quiet)
  h.off, h.why = now, why
  return true
end

-- May an attempt of `id` to its endpoint start now? nil if so (it holds a slot), else what
-- holds it back: 'disabled', 'open' (the circuit) or 'limit' (attempts in flight). A
-- delivery released from the backlog was given its slot (`sl`: '1', or 'probe'): it goes,
-- however long its message waited in the queue (its reservation may have lapsed meanwhile).
local function gate(id, d, h, now)
  if h.off then return 'disabled' end
  local granted = d.sl
  if granted ~= '' then redis.call('HSET', key('dlv', id), 'sl', '') end
  local fly = key('fly', d.u)
  local lapse = num(now + C.lease_ms)
  if granted == 'probe' or (h.open > 0 and not held_by_circuit(h, id, now)) then
    redis.call('HSET', key('ep', d.u), 'probe', id, 'pu', lapse)  -- the probe
  elseif held_by_circuit(h, id, now) then
    return 'open'
  elseif granted == '' and not redis.call('ZSCORE', fly, id)
      and in_flight(d.u, now) >= math.floor(h.cw) then
    return 'limit'
  end
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
  if why == 'open' and disable_if_failing_too_long(d.u, h, now, '') then
    return hold(id, d, now, h, 'disabled')
  end
  local due, reason
  if why == 'open' then
    due, reason = math.max(h.open, h.pu), circuit_reason(h, now)
    -- looked at again when it is due to be disabled, if that comes first
    if C.disable_ms > 0 and h.fs then due = math.min(due, h.fs + C.disable_ms) end
  else
    due = next_lapse(d.u, now)
    reason = 'the endpoint\'s limit of ' .. math.floor(h.cw) .. ' attempts in flight is reached'
  end
  if to_backlog(id, d, now, due, reason) then return 'deferred', reason end
  return dead_now(id, d, now, BACKLOG_FULL), BACKLOG_FULL
end

local function cooldown(opens)
  return math.min(C.cooldown_ms * 2 ^ (opens - 1), C.cooldown_max_ms)
end

-- After an attempt, the endpoint learns from it: `signal` is 'ok', 'congested' (a timeout,
-- a connection error, 5xx, 429: the limit halves) or 'failed' (any other failure). The
-- limit grows slowly on success; failures in a row open the circuit; failing for
-- `disable_ms` without a success disables the endpoint. Returns true if it is disabled.
local function learn(id, d, now, signal, reason)
  local ep = key('ep', d.u)
  redis.call('ZREM', key('fly', d.u), id)
  local h = health(d.u)
  if d.src == 'ops' and not h.quiet then
    redis.call('HSET', ep, 'quiet', '1')
    h.quiet = true
  end
  local quiet = h.quiet
  if h.off then return true end
  if signal == 'ok' then
    local cw = h.cw < h.ss and h.cw + 1 or h.cw + 1 / h.cw
    redis.call('HSET', ep, 'cw', tostring(math.min(cw, h.ceiling)), 'cf', 0, 'ok', num(now),
      'at', num(now))
    if h.fs then redis.call('HDEL', ep, 'fs') end
    if h.open > 0 then
      redis.call('HSET', ep, 'open', 0, 'opens', 0, 'probe', '', 'pu', 0)
      if not quiet then
        ops_event('endpoint.recovered', d.u, now, {failing_since = h.fs and secs(h.fs) or ''})
      end
    end
  else
    local f = {'cf', h.cf + 1, 'err', reason, 'at', num(now)}
    if not h.fs then
      h.fs = now
      f[#f + 1], f[#f + 2] = 'fs', num(now)
    end
    if signal == 'congested' then
      local half = tostring(math.max(1, h.cw / 2))
      f[#f + 1], f[#f + 2], f[#f + 3], f[#f + 4] = 'cw', half, 'ss', half
    end
    local opens
    if h.open > 0 and h.probe == id then opens = h.opens + 1  -- the probe failed
    elseif h.open == 0 and h.cf + 1 >= C.threshold then opens = 1 end
    if opens then
      for _, x in ipairs({'open', num(now + cooldown(opens)), 'opens', opens, 'probe', '',
                          'pu', 0}) do f[#f + 1] = x end
    end
    redis.call('HSET', ep, unpack(f))
    if opens == 1 and not quiet then
      ops_event('endpoint.failing', d.u, now, {consecutive_failures = h.cf + 1,
        failing_since = secs(h.fs), last_error = reason,
        next_probe_at = secs(now + cooldown(1))})
    end
    if disable_if_failing_too_long(d.u, h, now, reason) then return true end
  end
  if redis.call('EXISTS', key('backlog', d.u)) == 1 then
    redis.call('ZADD', K.releases, 'LT', num(now), d.u)
  end
  return false
end

-- Queue the delivery if its endpoint's health and its URL's rate limit allow, else its
-- backlog, else (full, or disabled) dead letter.
-- Returns 'queued' and the message's token, 'deferred' or 'dead'.
local function admit_or_wait(id, d, now, limit)
  local h = health(d.u)
  if h.off then return (hold(id, d, now, h, 'disabled')) end
  if held_by_circuit(h, id, now) then return (hold(id, d, now, h, 'open')) end
  local win = admit(d.u, limit, now)
  if win then
    redis.call('HSET', key('dlv', id), 'w', win)
    return 'queued', to_queue(id, d, now)
  end
  if rate_wait(id, d, now, limit) then return 'deferred' end
  return dead_now(id, d, now, BACKLOG_FULL)
end

-- A message the caller publishes: id, token, attempt, event, url (as shown).
local function message(out, id, d, token)
  out[#out + 1] = id
  out[#out + 1] = tostring(token)
  out[#out + 1] = d.a
  out[#out + 1] = d.e
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
  if not h.off and h.open > 0 then disable_if_failing_too_long(tag, h, now, '') end
  if h.off then
    room = budget  -- a disabled endpoint's backlog is dead-lettered, whatever its rate
  elseif not url or string.sub(url, 1, 7) == 'action:' then
    -- an action has no health to weigh
  elseif h.open > 0 then
    if now < h.open or h.pu > now then
      room, later = 0, math.max(h.open, h.pu)
      if C.disable_ms > 0 and h.fs then later = math.min(later, h.fs + C.disable_ms) end
    else
      room, probe = math.min(room, 1), true
    end
  else
    local free = math.floor(h.cw) - in_flight(tag, now)
    if free < room then room, later = math.max(0, free), next_lapse(tag, now) end
  end
  local released = 0
  while released < room do
    local head = redis.call('ZPOPMIN', backlog)
    if #head == 0 then break end
    local id = head[1]
    local d = record(id)
    if d and d.s == 'b' then
      if h.off then
        dead_now(id, d, now, disabled_reason(h), true)
      else
        if limit > 0 then
          redis.call('INCR', rate)
          redis.call('PEXPIRE', rate, 2 * C.window_ms)
        end
        redis.call('HSET', key('dlv', id), 'w', limit > 0 and window_of(now) or '')
        local lapse = num(now + C.grace_ms + C.lease_ms)
        if probe then redis.call('HSET', key('ep', tag), 'probe', id, 'pu', lapse) end
        redis.call('ZADD', key('fly', tag), lapse, id)
        redis.call('HSET', key('dlv', id), 'sl', probe and 'probe' or '1')
        message(out, id, d, to_queue(id, d, now))
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
