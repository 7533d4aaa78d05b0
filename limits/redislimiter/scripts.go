package redislimiter

import "github.com/redis/go-redis/v9"

// One script carries a batch of decisions (see batch.go): the preamble of
// helpers, one function per kind of call, and a loop over the batch. Times
// are integer milliseconds since the Unix epoch on the limiter's clock:
// Redis TIME, read once per batch (or, with Config.Clock, the reading the
// batch carries: see batchScriptAt). Lua 5.1
// numbers are doubles, exact for integers below 2^53, so millisecond
// arithmetic is exact; numbers are turned into strings with
// string.format('%d') where a string is built, because tostring keeps only
// 14 significant digits.
//
// Every redis.call costs server time, so the common paths make as few as
// they can: an acquire under a paid plan makes four (and one TIME per batch),
// a renewal five, a release four (seven for an account's last kept slot), a
// keep five.
//
// Keys (all in KEYS[]): per account, slots (ZSET session id -> lease expiry)
// and run (HASH session id -> start of a trial session, 0 until Started) and
// used (HASH yyyymm -> finished trial milliseconds of that UTC month); per
// service, cap (ZSET account-qualified session id -> lease expiry) and epoch
// (STRING: when the first slot of this data set was granted).
const preamble = `
local DAY = 86400000
-- ACCOUNT_TTL lets the keys of an account nobody uses any more expire, long
-- after anything in them could matter (a month's minutes, a lease).
local ACCOUNT_TTL = 40 * DAY
-- HYGIENE bounds the service-wide set when no capacity does: past it, each
-- acquire purges a batch of expired members.
local HYGIENE = 4096

local function istr(n) return string.format('%d', n) end

-- KEPT is the score of a kept slot (see keep): 2^52 ms, some 140,000
-- years, exact in a double and later than any clock.
local KEPT = 4503599627370496

-- holds_kept reports whether the account holds a kept slot: its keys then
-- have no expiry (see keep), and the calls of its other sessions must not
-- give them one back.
local function holds_kept(slots)
  return redis.call('ZCOUNT', slots, KEPT, '+inf') > 0
end

-- L returns the helpers of the rarer paths (months, minutes, purges), built
-- on first use: creating closures costs time on every run of the hot paths.
local lib
local function L()
  if lib then return lib end

  -- Howard Hinnant's days_from_civil and civil_from_days (proleptic
  -- Gregorian calendar).
  local function days_from_civil(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = math.floor(y / 400)
    local yoe = y - era * 400
    local mp = (m + 9) % 12
    local doy = math.floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
  end

  local function civil_from_days(z)
    z = z + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
    local y = yoe + era * 400
    local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local m
    if mp < 10 then m = mp + 3 else m = mp - 9 end
    if m <= 2 then y = y + 1 end
    return y, m
  end

  -- month_of returns the UTC month holding ms as yyyymm and the month's
  -- first millisecond.
  local function month_of(ms)
    local y, m = civil_from_days(math.floor(ms / DAY))
    return y * 100 + m, days_from_civil(y, m, 1) * DAY
  end

  -- add_usage adds [s, e) to the used hash, split at UTC month boundaries.
  -- Only the current month is ever checked, so at most three months are
  -- written.
  local function add_usage(used, s, e)
    local last = month_of(e - 1)
    local n = 0
    while e > s and n < 3 do
      local field, m0 = month_of(e - 1)
      local from = math.max(s, m0)
      redis.call('HINCRBY', used, istr(field), e - from)
      e = from
      n = n + 1
    end
    if n > 0 then
      redis.call('PEXPIRE', used, ACCOUNT_TTL)
      if redis.call('HLEN', used) > 12 then
        -- Keep a year of months (a bounded hash); only the current one is
        -- read.
        for _, f in ipairs(redis.call('HKEYS', used)) do
          if tonumber(f) <= last - 100 then redis.call('HDEL', used, f) end
        end
      end
    end
  end

  -- finalize stops counting a session at e: a started trial session's
  -- minutes from its start to e move from run into used. run holds 0 for a
  -- trial session not yet started; a session never started, not a trial, or
  -- already finalised counts nothing, so finalising twice counts nothing
  -- twice.
  local function finalize(run, used, sid, e)
    local st = redis.call('HGET', run, sid)
    if st then
      redis.call('HDEL', run, sid)
      st = tonumber(st)
      if st > 0 then add_usage(used, st, e) end
    end
  end

  -- purge_slots removes at most batch expired slots of the account,
  -- finalising each at its expiry.
  local function purge_slots(slots, run, used, now, batch)
    local dead = redis.call('ZRANGEBYSCORE', slots, '-inf', istr(now), 'WITHSCORES', 'LIMIT', 0, batch)
    for i = 1, #dead, 2 do
      redis.call('ZREM', slots, dead[i])
      finalize(run, used, dead[i], tonumber(dead[i + 1]))
    end
  end

  -- purge_batch removes at most batch members scored at or below max.
  local function purge_batch(key, max, batch)
    local dead = redis.call('ZRANGEBYSCORE', key, '-inf', istr(max), 'LIMIT', 0, batch)
    if #dead > 0 then redis.call('ZREM', key, unpack(dead)) end
  end

  lib = {month_of = month_of, add_usage = add_usage, finalize = finalize,
    purge_slots = purge_slots, purge_batch = purge_batch}
  return lib
end
`

// batchScript runs a batch of calls in order, each as if it were alone: a
// call sees the effects of the calls before it. A call that fails (a key of
// the wrong type, say) is answered its error and the others go on; like any
// Redis script, what a failed call wrote before failing stays written, and
// every call is safe to run twice (see the package doc, Idempotence).
//
// KEYS: 1 cap, 2 epoch, then three per call: slots, run, used of its
// account.
// ARGV: 1 ttl, 2 capacity (0: none), 3 purge batch, then per call its kind
// and its arguments:
//
//	a (acquire): session id, cap member, max concurrent, trial (0/1), monthly quota in ms
//	s (started): session id
//	n (renew):   session id, cap member, adopt (0/1), the lease's expiry (0: none)
//	k (keep):    session id, cap member, adopt (0/1)
//	r (release): session id, cap member
//
// Returns three values per call: two integers and an error message, empty
// when the call succeeded.
//   - acquire: refused limit (0 granted, 1 trial quota, 2 concurrency,
//     3 capacity), lease expiry (0 for a kept slot).
//   - started: 1 when it started counting, 0 when there was nothing to start
//     (a replay, a second call, a paid session), 2 when the session holds no
//     live slot (released, expired, never acquired); then 0.
//   - renew: {1, new expiry} when renewed or adopted ({1, 0} for a kept
//     slot, left kept), {0, 0} when the lease expired or was released.
//   - keep: {1, 0} when the slot is kept (now or before), {0, 0} when the
//     lease expired or was released.
//   - release: 1 when it removed the slot, 0 when there was none (released
//     before, expired and purged, never acquired); then 0.
var batchScript = redis.NewScript(preamble + redisClock + batchSrc)

// batchScriptAt is batchScript on the limiter's own clock (Config.Clock):
// ARGV[1] is its reading in milliseconds, and the arguments above follow
// from ARGV[2] on.
var batchScriptAt = redis.NewScript(preamble + argClock + batchSrc)

// redisClock reads the time from Redis TIME; the batch's arguments start at
// ARGV[1].
const redisClock = `
local function read_clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local A = 1
`

// argClock reads the time the batch carries in ARGV[1]; the batch's
// arguments start at ARGV[2].
const argClock = `
local given = tonumber(ARGV[1])
local function read_clock() return given end
local A = 2
`

const batchSrc = `
local cap, epoch = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[A])
local capacity = tonumber(ARGV[A + 1])
local batch = tonumber(ARGV[A + 2])

-- One reading of the clock serves the whole batch: the batch is atomic, so
-- its calls happen at one instant.
local clock
local function now()
  if not clock then clock = read_clock() end
  return clock
end

-- acquire takes or refuses a slot.
--
-- A paid plan's request is inserted first (ZADD NX, which also finds a slot
-- the session already holds) and rolled back when a limit refuses; sets are
-- counted with ZCARD, expired members included, and only a count at the
-- limit is made exact by purging a batch and counting live members. So the
-- common grant is ZADD, ZCARD, ZADD, ZCARD. A trial plan's request checks the
-- quota before it inserts anything.
local function acquire(k, a)
  local slots, run, used = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local sid, member = ARGV[a], ARGV[a + 1]
  local maxc = tonumber(ARGV[a + 2])
  local trial = ARGV[a + 3] == '1'
  local t = now()
  local exp = t + ttl

  local inserted = false
  if not trial then
    inserted = redis.call('ZADD', slots, 'NX', exp, sid) == 1
  end
  if not inserted then
    -- The same session acquiring again (a retried request, a replayed
    -- script) gets its slot back, renewed, without any check: never a second
    -- one.
    local held = redis.call('ZSCORE', slots, sid)
    if held then
      held = tonumber(held)
      if held >= KEPT then return 0, 0 end
      if held > t then
        redis.call('ZADD', slots, exp, sid)
        redis.call('ZADD', cap, exp, member)
        return 0, exp
      end
      -- Expired and not purged yet: end it as the purge would, then go on as
      -- a new session (a paid one stays inserted, with its new expiry).
      if trial then
        redis.call('ZREM', slots, sid)
      else
        redis.call('ZADD', slots, exp, sid)
      end
      redis.call('ZREM', cap, member)
      L().finalize(run, used, sid, held)
    end
  end

  if trial then
    local quota = tonumber(ARGV[a + 4])
    local field, m0 = L().month_of(t)
    local spent = tonumber(redis.call('HGET', used, istr(field)) or '0')
    if spent < quota then
      -- Running sessions count up to now, or up to their lease's expiry when
      -- their holder died and no purge has finished them yet.
      local r = redis.call('HGETALL', run)
      for i = 1, #r, 2 do
        local st = tonumber(r[i + 1])
        if st > 0 then
          local e = t
          local sc = redis.call('ZSCORE', slots, r[i])
          if not sc then
            -- Its slot is gone without a trace (its key expired): the start
            -- alone cannot say for how long it ran.
            redis.call('HDEL', run, r[i])
            e = st
          elseif tonumber(sc) < e then
            e = tonumber(sc)
          end
          local from = math.max(st, m0)
          if e > from then spent = spent + (e - from) end
        end
      end
    end
    if spent >= quota then return 1, 0 end
    redis.call('ZADD', slots, exp, sid)
  end

  local n = redis.call('ZCARD', slots)
  if n > maxc then
    L().purge_slots(slots, run, used, t, batch)
    n = redis.call('ZCOUNT', slots, '(' .. istr(t), '+inf')
    if n > maxc then
      redis.call('ZREM', slots, sid)
      return 2, 0
    end
  end

  local bound = capacity
  if bound == 0 then bound = HYGIENE end
  redis.call('ZADD', cap, exp, member)
  local c = redis.call('ZCARD', cap)
  if c > bound then
    L().purge_batch(cap, t, batch)
    if capacity > 0 then
      c = redis.call('ZCOUNT', cap, '(' .. istr(t), '+inf')
      if capacity > 0 and c > capacity then
        redis.call('ZREM', cap, member)
        redis.call('ZREM', slots, sid)
        return 3, 0
      end
    end
  end

  -- The first slot of a data set (a new one, or one Redis lost) dates it;
  -- see renew.
  if c == 1 then redis.call('SET', epoch, istr(t), 'NX') end
  -- The first slot of an account (again) starts the expiry of its keys;
  -- renewals push it on.
  if n == 1 then redis.call('PEXPIRE', slots, ACCOUNT_TTL) end
  if trial then
    redis.call('HSET', run, sid, '0')
    if not holds_kept(slots) then redis.call('PEXPIRE', run, ACCOUNT_TTL) end
  end
  return 0, exp
end

-- started starts counting a trial session's minutes.
local function started(k, a)
  local slots, run, sid = KEYS[k], KEYS[k + 1], ARGV[a]
  local t = now()
  local sc = redis.call('ZSCORE', slots, sid)
  if not sc or tonumber(sc) <= t then return 2, 0 end
  if redis.call('HGET', run, sid) ~= '0' then return 0, 0 end
  redis.call('HSET', run, sid, istr(t))
  return 1, 0
end

-- renew extends a live lease, or adopts one that Redis lost.
local function renew(k, a)
  local slots, run, used = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local sid, member = ARGV[a], ARGV[a + 1]
  local t = now()
  local exp = t + ttl

  local sc = redis.call('ZSCORE', slots, sid)
  if sc then
    sc = tonumber(sc)
    if sc >= KEPT then return 1, 0 end
    if sc > t then
      redis.call('ZADD', slots, exp, sid)
      redis.call('ZADD', cap, exp, member)
      if not holds_kept(slots) then redis.call('PEXPIRE', slots, ACCOUNT_TTL) end
      return 1, exp
    end
    -- Expired: the slot is gone; end it now rather than at the next purge.
    redis.call('ZREM', slots, sid)
    redis.call('ZREM', cap, member)
    L().finalize(run, used, sid, sc)
    return 0, 0
  end

  -- No trace of the slot: it was released, or it expired and was purged, or
  -- it never existed, or Redis lost its data (a restart without persistence,
  -- a failover, a flush). Only the last is adopted: a lease last renewed
  -- before the first slot of this data set was granted. A released or purged
  -- lease was renewed after that, since the data set held it.
  local lexp = tonumber(ARGV[a + 3])
  local adopt = ARGV[a + 2] == '1'
  if not adopt and lexp > 0 then
    local ep = redis.call('GET', epoch)
    adopt = (not ep) or (lexp - ttl < tonumber(ep))
  end
  if not adopt then return 0, 0 end
  redis.call('ZADD', slots, exp, sid)
  redis.call('ZADD', cap, exp, member)
  if not holds_kept(slots) then redis.call('PEXPIRE', slots, ACCOUNT_TTL) end
  redis.call('SET', epoch, istr(t), 'NX')
  return 1, exp
end

-- keep makes a live slot durable: its score becomes KEPT, which no clock
-- reaches, so no purge ever takes it; only release frees it. The account's
-- keys lose their expiry while it holds a kept slot (release gives it
-- back), so that a session longer than ACCOUNT_TTL keeps its slot and its
-- start. A fail-open lease of this node (adopt) is put into Redis, kept.
local function keep(k, a)
  local slots, run, used = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local sid, member = ARGV[a], ARGV[a + 1]
  local sc = redis.call('ZSCORE', slots, sid)
  if sc then
    sc = tonumber(sc)
    if sc >= KEPT then return 1, 0 end
    if sc <= now() then
      -- Expired: the slot is gone; end it now rather than at the next purge.
      redis.call('ZREM', slots, sid)
      redis.call('ZREM', cap, member)
      L().finalize(run, used, sid, sc)
      return 0, 0
    end
  elseif ARGV[a + 2] ~= '1' then
    return 0, 0
  else
    redis.call('SET', epoch, istr(now()), 'NX')
  end
  redis.call('ZADD', slots, KEPT, sid)
  redis.call('ZADD', cap, KEPT, member)
  redis.call('PERSIST', slots)
  redis.call('PERSIST', run)
  return 1, 0
end

-- release frees a slot and finalises the session's minutes. A paid
-- session's release is HGET, ZREM, ZREM; the clock is read only for a
-- started trial session.
local function release(k, a)
  local slots, run, used = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local sid, member = ARGV[a], ARGV[a + 1]
  local st = redis.call('HGET', run, sid)
  if st then
    redis.call('HDEL', run, sid)
    st = tonumber(st)
    if st > 0 then
      -- Count to now, or to the lease's expiry when it expired unreleased.
      local e = now()
      local sc = redis.call('ZSCORE', slots, sid)
      if sc and tonumber(sc) < e then e = tonumber(sc) end
      L().add_usage(used, st, e)
    end
  end
  local freed = redis.call('ZREM', slots, sid)
  redis.call('ZREM', cap, member)
  -- The account's last kept slot gone, its keys expire again (see keep).
  if freed == 1 and redis.call('TTL', slots) == -1 and redis.call('ZCOUNT', slots, KEPT, '+inf') == 0 then
    redis.call('PEXPIRE', slots, ACCOUNT_TTL)
    redis.call('PEXPIRE', run, ACCOUNT_TTL)
  end
  return freed, 0
end

-- The kinds of call, with how many arguments follow the kind.
local calls = {a = {acquire, 5}, s = {started, 1}, n = {renew, 4}, k = {keep, 3}, r = {release, 2}}

local out = {}
local k, a = 3, A + 3
while a <= #ARGV do
  local c = calls[ARGV[a]]
  if not c then return redis.error_reply('unknown call ' .. tostring(ARGV[a])) end
  local ok, r1, r2 = pcall(c[1], k, a + 1)
  if ok then
    out[#out + 1] = r1
    out[#out + 1] = r2
    out[#out + 1] = ''
  else
    if type(r1) == 'table' then r1 = r1.err end
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = tostring(r1)
  end
  k = k + 3
  a = a + 1 + c[2]
end
return out
`
