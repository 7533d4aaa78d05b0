package session

import (
	"sync/atomic"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// Guard is a client's view of one remote session: it learns the session's
// state from the server (the realtime socket's session.state_updated events,
// or API answers) and says, before any network call, whether the server
// would accept a command now. The zero Guard knows no state yet.
//
// A Guard is safe for concurrent use by multiple goroutines; it is a single
// atomic word, and none of its methods allocates or blocks.
type Guard struct {
	state atomic.Int32
}

// Observe learns that the session is in state s. States only move forward,
// and events can arrive out of order, so a state earlier than one already
// observed is ignored; so is a value outside the five lifecycle states.
func (g *Guard) Observe(s fsm.State) {
	if s < fsm.New || s > fsm.Closed {
		return
	}
	for {
		cur := g.state.Load()
		if int32(s) <= cur || g.state.CompareAndSwap(cur, int32(s)) {
			return
		}
	}
}

// State returns the latest state observed, fsm.Unknown before any.
func (g *Guard) State() fsm.State { return fsm.State(g.state.Load()) }

// Check returns nil when the server would accept cmd in the observed state,
// and otherwise exactly the error it would answer: the 10001–10005 error of
// that state (fsm.Allow). Before any state is observed it returns 10006, as
// the server does for a session it does not know.
func (g *Guard) Check(cmd fsm.Command) error {
	s := g.State()
	if s == fsm.Unknown {
		return sserrors.ErrSessionNotFound
	}
	return fsm.Allow(s, cmd)
}
