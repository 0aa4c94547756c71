-- The head of shahihooks' Redis function library (state.py builds it: this, then each
-- script's body as a registered function): the key names (built with keys.py's patterns),
-- the settings every call shares, Redis's clock, and the steps several scripts take. It runs
-- once, when the library is loaded; each call begins with `setup(ARGV)`.
--
-- ARGV[1..9] are the same for every call (state.py `_common`):
--   prefix, lease_ms, grace_ms, default_limit, window_ms, backlog_max, done_ttl_s,
--   log_max_len, stats_ttl_s
-- A call's own arguments start at ARGV[A].
--
-- A delivery's record (`dlv`) fields:
--   m message id   u url tag   e event   a attempt   p fencing token of its live message
--   s state: q queued (a message is in the broker)   x sending (an attempt holds it)
--            w waiting for a retry   n due for admission   r admitted, due for a message
--            b in its URL's backlog
--   t when the state was entered (ms)   o emit order   w the rate window it was admitted in
--   c checks of a queued message
--   src "store" when the endpoint came from the store   b attempts that hit a bug
--   l messages of it found lost
local A = 10
local P, C, K  -- this call's prefix, settings and keys (Redis runs one at a time)
local function key(...) return table.concat({P, ...}, ':') end
local SETUP = ''

local function setup(argv)
  local common = table.concat(argv, '\0', 1, 9)
  if common == SETUP then return end  -- the same settings as the call before: kept
  SETUP, P = common, argv[1]
  C = {
    lease_ms = tonumber(argv[2]), grace_ms = tonumber(argv[3]), limit = tonumber(argv[4]),
    window_ms = tonumber(argv[5]), backlog_max = tonumber(argv[6]), done_ttl = argv[7],
    log_max = argv[8], stats_ttl = argv[9],
  }
  K = {
    schedule = key('schedule'), releases = key('releases'), urls = key('urls'),
    endpoints = key('endpoints'), watermark = key('watermark'), log = key('log'),
    dead_index = key('dead'), retrying = key('retrying'), seq = key('seq'),
    wmhist = key('watermark', 'history'), totals = key('totals'),
  }
end

-- Lua's tostring() writes large numbers in exponent form: integers go through this.
local function num(x) return string.format('%.0f', x) end
local function secs(ms) return string.format('%.3f', ms / 1000) end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local FIELDS = {'m', 'u', 'e', 'a', 's', 'p', 't', 'o', 'w', 'c', 'src', 'b'}
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

local function shown_url(d) return redis.call('HGET', K.urls, d.u .. ':shown') or '' end

local function log_event(id, d, now, outcome, err, next_ms)
  redis.call('XADD', K.log, 'MAXLEN', '~', C.log_max, '*',
    'ts', secs(now), 'id', id, 'url', shown_url(d), 'event', d.e, 'attempt', d.a,
    'outcome', outcome, 'status', '', 'ms', '0', 'error', err,
    'next_s', next_ms and num(math.max(0, next_ms) / 1000) or '')
end

-- Delivered or dead: the record goes, and the body once no delivery of it is left.
local function retire(id, d, mark)
  if d.s == 'w' then redis.call('HINCRBY', K.retrying, d.u, -1) end
  if d.s == 'b' then redis.call('ZREM', key('backlog', d.u), id) end
  redis.call('SET', key('done', id), mark, 'EX', C.done_ttl)
  redis.call('DEL', key('dlv', id))
  redis.call('ZREM', K.schedule, id)
  local body = key('body', d.m)
  if redis.call('HINCRBY', body, 'refs', -1) <= 0 then redis.call('DEL', body) end
end

-- The dead letter keeps the body's parts (the body is rebuilt from them, byte for byte), and
-- the URL as shown (credentials masked): its tag finds the URL itself in `urls`.
local function dead_letter(id, d, now, reason, status, response)
  local body = redis.call('HMGET', key('body', d.m), 'event', 'ts', 'site', 'data')
  local letter = key('dead', id)
  redis.call('DEL', letter)
  redis.call('HSET', letter, 'id', id, 'msg', d.m, 'url', shown_url(d),
    'tag', d.u, 'event', d.e, 'attempts', d.a, 'reason', reason, 'status', status,
    'died_at', secs(now), 'ts', body[2] or '0', 'site', body[3] or '', 'data', body[4] or '',
    'has_body', body[1] and '1' or '0', 'response', response, 'src', d.src)
  redis.call('ZADD', K.dead_index, secs(now), id)
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

-- Wait in the URL's backlog, in emit order; false when it is full.
local function to_backlog(id, d, now, limit)
  local backlog = key('backlog', d.u)
  if redis.call('ZCARD', backlog) >= C.backlog_max then return false end
  redis.call('ZADD', backlog, d.o, id)
  redis.call('ZREM', K.schedule, id)
  set_state(id, d, 'b', now)
  local used = tonumber(redis.call('GET', key('rate', d.u, window_of(now)))) or 0
  local due = now
  if limit > 0 and used >= limit then due = next_window(now) end
  redis.call('ZADD', K.releases, 'LT', num(due), d.u)
  local ahead = redis.call('ZRANK', backlog, id)
  log_event(id, d, now, 'deferred', 'rate limit of ' .. limit .. ' per ' .. num(C.window_ms / 1000)
    .. ' s reached: waits in the backlog (' .. ahead .. ' ahead)', due - now)
  local stats = key('stats', num(math.floor(now / 3600000)))
  redis.call('HINCRBY', stats, shown_url(d) .. ' ' .. d.e .. ' def', 1)
  redis.call('EXPIRE', stats, C.stats_ttl)
  return true
end

-- A new message for the delivery: a new fencing token, and a check that it is not lost.
local function to_queue(id, d, now)
  local pub = redis.call('HINCRBY', key('dlv', id), 'p', 1)
  redis.call('HSET', key('dlv', id), 'c', '0')
  set_state(id, d, 'q', now)
  redis.call('ZADD', K.schedule, num(now + C.grace_ms), id)
  return pub
end

local BACKLOG_FULL = 'backlog full: SHAHIHOOKS_BACKLOG_MAX deliveries already wait for this URL'

-- Queue the delivery if its URL's limit allows, else its backlog, else (full) dead letter.
-- Returns 'queued' and the message's token, 'deferred' or 'dead'.
local function admit_or_wait(id, d, now, limit)
  local win = admit(d.u, limit, now)
  if win then
    redis.call('HSET', key('dlv', id), 'w', win)
    return 'queued', to_queue(id, d, now)
  end
  if to_backlog(id, d, now, limit) then return 'deferred' end
  log_event(id, d, now, 'dead', BACKLOG_FULL, nil)
  dead_letter(id, d, now, BACKLOG_FULL, '', '')
  return 'dead'
end
