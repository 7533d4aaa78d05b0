package redisstore

// trimClosedLua defines trim_closed, which transitionScript calls when a
// session closes: it lists the session in its account's index of closed
// sessions (scored by Redis time in microseconds, kept strictly increasing
// so that the order is the order of the closes) and forgets the oldest
// past the bound as deleteScript would (the record, its deadline, its
// listings; closed → unknown on the channel), so that an account creating
// and stopping sessions without pause cannot grow Redis without bound.
// Entries whose retention has ended (forgotten already, or about to be)
// are dropped first; the index expires with its newest entry's retention.
// A negative bound keeps every closed session (listed, never pushed out).
const trimClosedLua = `
local function trim_closed(idx, acct, timers, id, bound, rtm, slack, prefix, channel, account, at)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. istr(now - rtm * 1000))
  if redis.call('ZSCORE', idx, id) then return end
  local last = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if #last == 2 and tonumber(last[2]) >= now then now = tonumber(last[2]) + 1 end
  redis.call('ZADD', idx, istr(now), id)
  redis.call('PEXPIRE', idx, istr(rtm + slack))
  while bound >= 0 and redis.call('ZCARD', idx) > bound do
    local oid = redis.call('ZPOPMIN', idx)[1]
    local rec = prefix .. 'r:' .. oid
    local h = redis.call('HMGET', rec, 'a', 's', 'e', 'r', 'o')
    if h[1] == account and h[2] == '5' then
      redis.call('DEL', rec)
      redis.call('ZREM', timers, oid)
      redis.call('ZREM', acct, oid)
      if h[5] then redis.call('SREM', prefix .. 'n:' .. h[5], oid) end
      publish(channel, 5, 0, tonumber(h[3]) + 1, at, num(h[4]), 0, oid, account)
      note_forgotten(prefix, oid, num(h[4]))
    end
  end
end
`

// closedKey is the index of the account's closed sessions (trimClosedLua).
func (s *Store) closedKey(account string) string { return s.prefix + "c:" + account }
