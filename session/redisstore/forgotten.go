package redisstore

import (
	"strconv"
	"time"
)

// forgottenNoteTTL is how long Redis remembers that a closed session was
// forgotten, and the reason it closed with: a node whose event
// subscription was down meanwhile (see resync) then delivers the session's
// end with its own reason, not as a loss of Redis's data. A node cut off
// for longer takes the session as lost (session.ReasonStoreLost), as it
// does a session whose closed record expired by itself.
const forgottenNoteTTL = 10 * time.Minute

// forgottenKey is the note of a forgotten session (forgottenLua).
func (s *Store) forgottenKey(id string) string { return s.prefix + "g:" + id }

// forgottenLua defines note_forgotten, which the scripts that forget a
// closed session call: it keeps the session's reason at "{prefix}g:<id>"
// for forgottenNoteTTL.
var forgottenLua = `
local function note_forgotten(prefix, id, reason)
  redis.call('SET', prefix .. 'g:' .. id, string.format('%d', reason), 'PX', ` +
	strconv.FormatInt(forgottenNoteTTL.Milliseconds(), 10) + `)
end
`
