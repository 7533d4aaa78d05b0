package redisstore

import "github.com/redis/go-redis/v9"

// The scripts. Every one runs in one round trip and is atomic: Redis runs
// scripts one at a time, so a script's reads and writes see no other
// change in between, which is what makes a transition a compare-and-set.
//
// Keys live under one hash tag ("{Prefix}:s:..."), so all of them share a
// Redis Cluster slot. The keys a script finds while it runs (the record of
// a session found in the deadline set, the session set of its node) are
// built from the prefix passed in ARGV: they are in the same slot, which
// Redis Cluster accepts.
//
// A record is a hash (see record.go for the fields). Times are integer
// nanoseconds kept as decimal strings, which Lua never turns into numbers
// (its doubles would round them); the *m fields are the same instants and
// durations in milliseconds rounded up, from which the scripts compute the
// session's next deadline as the score of the deadline set. A deadline
// computed from ceilings is never earlier than the exact one, so a member
// whose score has passed is due; the Go side checks it with
// Record.NextTimeout and re-arms it when activity moved it.
//
// Numbers are written with string.format('%d') wherever they become
// strings: Lua's default conversion keeps only 14 significant digits.
//
// Every change publishes an event on the channel (same script, so the
// order of the messages is the order of the commits):
// "from,to,epoch,at,reason,score,len(id),<id><account>", score being the
// session's new deadline (0 when none).
const preamble = `
local function istr(n) return string.format('%d', n) end
local function num(v) if v then return tonumber(v) or 0 end return 0 end

-- deadline returns the score of the session's next deadline in state to,
-- or nil (the mirror of Record.NextTimeout, plus the closing grace).
local function deadline(rec, to, grace)
  local f = redis.call('HMGET', rec, 'jd', 'stm', 'dlm', 'lam', 'itm', 'di', 'cgm', 'clm', 'rtm')
  local jd, stm, dlm, lam, itm, di, cgm, clm, rtm =
    num(f[1]), num(f[2]), num(f[3]), num(f[4]), num(f[5]), f[6], num(f[7]), num(f[8]), num(f[9])
  local d
  local function consider(x) if d == nil or x < d then d = x end end
  if to <= 3 then
    if to ~= 3 and jd > 0 then consider(jd) end
    if to ~= 1 and dlm > 0 and stm > 0 then consider(stm + dlm) end
    if to == 3 and di ~= '1' and itm > 0 then consider(lam + itm) end
  elseif to == 4 then
    consider(cgm + grace)
  else
    consider(clm + rtm)
  end
  return d
end

local function publish(channel, from, to, epoch, at, reason, score, id, account)
  redis.call('PUBLISH', channel, istr(from) .. ',' .. istr(to) .. ',' .. istr(epoch) .. ',' .. at .. ',' ..
    istr(reason) .. ',' .. istr(score or 0) .. ',' .. istr(#id) .. ',' .. id .. account)
end
`

// insertScript stores a new session.
//
// KEYS: 1 record, 2 account index, 3 deadlines, 4 node's sessions.
// ARGV: 1 id, 2 account, 3 nonce, 4 join deadline score (0: none),
// 5 channel, 6 created ns, 7.. field/value pairs.
// Returns 0 when stored (or when this very insert was stored before: a
// replayed script), 1 when the id is taken.
var insertScript = redis.NewScript(preamble + `
local rec, acct, timers, mine = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, account, nonce = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', rec) == 1 then
  if redis.call('HGET', rec, 'n') == nonce then return 0 end
  return 1
end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', rec, unpack(fields))
local t = redis.call('TIME')
-- The account index is ordered by insertion (Redis microseconds).
redis.call('ZADD', acct, istr(tonumber(t[1]) * 1000000 + tonumber(t[2])), id)
redis.call('SADD', mine, id)
local jd = tonumber(ARGV[4])
if jd > 0 then redis.call('ZADD', timers, istr(jd), id) end
publish(ARGV[5], 0, 1, 1, ARGV[6], 0, jd, id, account)
return 0
`)

// transitionScript applies one event as a compare-and-set.
//
// KEYS: 1 record, 2 account index, 3 deadlines, 4 account's closed index.
// ARGV: 1 account, 2 expected epoch (0: any), 3 transition table (the
// state reached from each state 0..5, one digit each, 0: refused), 4 at ns,
// 5 at ms (rounded up), 6 reason, 7 nonce, 8 closing grace ms, 9 key prefix,
// 10 retention slack ms, 11 id, 12 channel, 13 closed kept per account
// (negative: no bound).
// Returns {0, from, record} on success (or for a replay of the change that
// made the current epoch), {1} when there is no such session, {2, state,
// record} when the state refuses the event, {3, state, record} when the
// epoch moved.
var transitionScript = redis.NewScript(preamble + forgottenLua + trimClosedLua + `
local rec, acct, timers = KEYS[1], KEYS[2], KEYS[3]
local h = redis.call('HMGET', rec, 'a', 's', 'e', 'op', 'of')
if not h[1] or h[1] ~= ARGV[1] then return {1} end
local st, ep = tonumber(h[2]), tonumber(h[3])
if h[4] == ARGV[7] then return {0, tonumber(h[5]), redis.call('HGETALL', rec)} end
local want = tonumber(ARGV[2])
if want ~= 0 and want ~= ep then return {3, st, redis.call('HGETALL', rec)} end
local to = tonumber(string.sub(ARGV[3], st + 1, st + 1)) or 0
if to == 0 then return {2, st, redis.call('HGETALL', rec)} end
ep = ep + 1
local at, atms = ARGV[4], ARGV[5]
local set = {'s', istr(to), 'e', istr(ep), 'op', ARGV[7], 'of', istr(st)}
if to == 2 then
  set[#set + 1] = 'st'; set[#set + 1] = at; set[#set + 1] = 'stm'; set[#set + 1] = atms
elseif to == 3 then
  set[#set + 1] = 'la'; set[#set + 1] = at; set[#set + 1] = 'lam'; set[#set + 1] = atms
elseif to == 4 then
  set[#set + 1] = 'r'; set[#set + 1] = ARGV[6]; set[#set + 1] = 'cgm'; set[#set + 1] = atms
elseif to == 5 then
  set[#set + 1] = 'cl'; set[#set + 1] = at; set[#set + 1] = 'clm'; set[#set + 1] = atms
end
redis.call('HSET', rec, unpack(set))
local id = ARGV[11]
local d = deadline(rec, to, tonumber(ARGV[8]))
if d then redis.call('ZADD', timers, istr(d), id) else redis.call('ZREM', timers, id) end
if to >= 4 then redis.call('ZREM', acct, id) end
if to == 5 then
  local o = redis.call('HGET', rec, 'o')
  if o then redis.call('SREM', ARGV[9] .. 'n:' .. o, id) end
  -- Forgotten by Redis itself if no node is left to forget it.
  redis.call('PEXPIRE', rec, istr(num(redis.call('HGET', rec, 'rtm')) + tonumber(ARGV[10])))
  trim_closed(KEYS[4], acct, timers, id, tonumber(ARGV[13]), num(redis.call('HGET', rec, 'rtm')),
    tonumber(ARGV[10]), ARGV[9], ARGV[12], ARGV[1], at)
end
publish(ARGV[12], st, to, ep, at, num(redis.call('HGET', rec, 'r')), d, id, ARGV[1])
return {0, st, redis.call('HGETALL', rec)}
`)

// touchScript records activity on a connected session; it moves no
// deadline (the deadline set is re-armed when the old deadline comes).
//
// KEYS: 1 record. ARGV: 1 account, 2 at ns, 3 at ms (rounded up).
// Returns {0, record} or {1} when there is no such session.
var touchScript = redis.NewScript(preamble + `
local rec = KEYS[1]
local h = redis.call('HMGET', rec, 'a', 's', 'la')
if not h[1] or h[1] ~= ARGV[1] then return {1} end
local at, la = ARGV[2], h[3] or '0'
-- Compare decimal strings of integers: longer is larger, else by bytes.
if h[2] == '3' and (#at > #la or (#at == #la and at > la)) then
  redis.call('HSET', rec, 'la', at, 'lam', ARGV[3])
end
return {0, redis.call('HGETALL', rec)}
`)

// deleteScript forgets a closed session at the expected epoch.
//
// KEYS: 1 record, 2 account index, 3 deadlines.
// ARGV: 1 account, 2 epoch, 3 at ns, 4 id, 5 key prefix, 6 channel.
// Returns {0, 5, record as it was}, {1}, {2, state, record} or {3, state,
// record} (as transitionScript).
var deleteScript = redis.NewScript(preamble + forgottenLua + `
local rec, acct, timers = KEYS[1], KEYS[2], KEYS[3]
local h = redis.call('HMGET', rec, 'a', 's', 'e', 'r', 'o')
if not h[1] or h[1] ~= ARGV[1] then return {1} end
local st, ep = tonumber(h[2]), tonumber(h[3])
local all = redis.call('HGETALL', rec)
if st ~= 5 then return {2, st, all} end
if ep ~= tonumber(ARGV[2]) then return {3, st, all} end
local id = ARGV[4]
redis.call('DEL', rec)
redis.call('ZREM', timers, id)
redis.call('ZREM', acct, id)
if h[5] then redis.call('SREM', ARGV[5] .. 'n:' .. h[5], id) end
publish(ARGV[6], 5, 0, ep + 1, ARGV[3], num(h[4]), 0, id, ARGV[1])
note_forgotten(ARGV[5], id, num(h[4]))
return {0, 5, all}
`)

// listScript returns an account's open sessions in insertion order.
//
// KEYS: 1 account index. ARGV: 1 key prefix.
// Returns {id, record, id, record, ...}, each record a flat field/value
// list.
var listScript = redis.NewScript(`
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for _, id in ipairs(ids) do
  local r = redis.call('HGETALL', ARGV[1] .. 'r:' .. id)
  if #r > 0 then out[#out + 1] = id; out[#out + 1] = r end
end
return out
`)

// dueScript claims the deadlines that have passed: each claimed member's
// score moves to now + the claim TTL, so that when the node that claimed
// it dies before acting, another node claims it again then.
//
// KEYS: 1 deadlines. ARGV: 1 now ms, 2 limit, 3 claim TTL ms, 4 key prefix.
// Returns {next score ("" when the set is empty), id, record, id, record,
// ...}. A member without a record (expired) is dropped.
var dueScript = redis.NewScript(`
local timers = KEYS[1]
local now = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', timers, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {''}
local claim = string.format('%d', now + tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local r = redis.call('HGETALL', ARGV[4] .. 'r:' .. id)
  if #r == 0 then
    redis.call('ZREM', timers, id)
  else
    redis.call('ZADD', timers, claim, id)
    out[#out + 1] = id
    out[#out + 1] = r
  end
end
local first = redis.call('ZRANGE', timers, 0, 0, 'WITHSCORES')
if #first == 2 then out[1] = first[2] end
return out
`)

// rearmScript moves claimed deadlines to where they belong (activity moved
// them, or the session has none), unless the session changed meanwhile
// (its change armed the right deadline).
//
// KEYS: 1 deadlines. ARGV: 1 key prefix, then triples id, epoch ("*":
// whatever the epoch), score (-1: remove).
var rearmScript = redis.NewScript(`
local timers = KEYS[1]
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  if ARGV[i + 1] == '*' or redis.call('HGET', ARGV[1] .. 'r:' .. id, 'e') == ARGV[i + 1] then
    if ARGV[i + 2] == '-1' then
      redis.call('ZREM', timers, id)
    else
      redis.call('ZADD', timers, ARGV[i + 2], id)
    end
  end
end
return 0
`)

// resyncScript reads the state and epoch of sessions, after the event
// subscription reconnected (messages published meanwhile are lost).
//
// KEYS: 1 deadlines (only to route the script to the right node of a
// cluster). ARGV: 1 key prefix, then ids. Returns {state, epoch, reason} per id
// ({0, 0, 0} when the session is gone; {0, 0, reason, 1} when it was
// closed with reason and forgotten: see forgottenLua).
var resyncScript = redis.NewScript(`
local out = {}
for i = 2, #ARGV do
  local h = redis.call('HMGET', ARGV[1] .. 'r:' .. ARGV[i], 's', 'e', 'r')
  if h[1] then
    out[#out + 1] = {tonumber(h[1] or '0'), tonumber(h[2] or '0'), tonumber(h[3] or '0')}
  else
    local g = redis.call('GET', ARGV[1] .. 'g:' .. ARGV[i])
    if g then out[#out + 1] = {0, 0, tonumber(g) or 0, 1} else out[#out + 1] = {0, 0, 0} end
  end
end
return out
`)
