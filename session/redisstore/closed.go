package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

var _ session.ClosedLister = (*Store)(nil)

// listClosedScript returns an account's closed sessions from its index of
// closed sessions (trimClosedLua), newest close first, skipping entries
// whose record is gone (forgotten) or is no longer that account's closed
// session.
//
// KEYS: 1 closed index. ARGV: 1 key prefix, 2 account, 3 limit (0: all).
// Returns {id, record, id, record, ...}, each record a flat field/value
// list.
var listClosedScript = redis.NewScript(`
local limit = tonumber(ARGV[3])
local ids = redis.call('ZREVRANGE', KEYS[1], 0, -1)
local out = {}
for _, id in ipairs(ids) do
  if limit > 0 and #out >= 2 * limit then break end
  local key = ARGV[1] .. 'r:' .. id
  local h = redis.call('HMGET', key, 'a', 's')
  if h[1] == ARGV[2] and h[2] == '` + closedDigit + `' then
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGETALL', key)
  end
end
return out
`)

// closedDigit is fsm.Closed as the record's state field holds it.
const closedDigit = string(rune('0' + int(fsm.Closed)))

// ListClosed implements session.ClosedLister, from any node: one round
// trip, reading the index the close script keeps (newest close first).
func (s *Store) ListClosed(ctx context.Context, account string, limit int) ([]session.Record, error) {
	if account == "" || len(account) > maxIDLen {
		return []session.Record{}, nil
	}
	res, err := listClosedScript.Run(ctx, s.client, []string{s.closedKey(account)}, s.prefix, account, max(limit, 0)).Slice()
	if err != nil {
		return nil, unavailable("list closed", err)
	}
	out := make([]session.Record, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		st, err := decodeFlat(id, res[i+1])
		if err != nil {
			return nil, sserrors.ErrInternalServerError.WithCause(err)
		}
		out = append(out, st.Record)
	}
	return out, nil
}
