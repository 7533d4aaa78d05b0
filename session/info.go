package session

import (
	"fmt"
	"strconv"
	"time"

	"github.com/streamsession/streamsession/fsm"
)

// Reason says what moved a session to closing and closed. A Reason is a
// plain value, safe to copy and to share between goroutines.
type Reason int

// The reasons a session closes.
const (
	ReasonNone      Reason = iota // the session has not closed
	ReasonStop                    // streaming.stop (Manager.Stop)
	ReasonIdle                    // the idle timeout: no activity for the session's IdleTimeout
	ReasonDuration                // the plan's session duration limit, counted from start
	ReasonJoin                    // the join timeout: still new or connecting that long after creation
	ReasonShutdown                // Manager.Close
	ReasonLeaseLost               // the limiter said the session's lease had expired: it no longer holds a slot
	// Deprecated: ReasonNodeLost is never given any more: a session
	// outlives the node that created it (its timers run on the other
	// nodes). Only records written by an earlier version carry it.
	ReasonNodeLost
	ReasonUserDisconnected // a stop whose caller said the user went away (LiveAvatar's USER_DISCONNECTED)
	ReasonAgentHangUp      // a stop whose caller said its agent ended the call (LiveAvatar's AGENT_HANG_UP)
	ReasonStoreLost        // the shared store lost the session's data (a Redis flushed, or restarted without persistence)
	ReasonMediaLost        // the client's media peer failed or was closed by the client (package media)
)

var reasonNames = [...]string{
	ReasonNone:      "none",
	ReasonStop:      "stop",
	ReasonIdle:      "idle",
	ReasonDuration:  "duration",
	ReasonJoin:      "join",
	ReasonShutdown:  "shutdown",
	ReasonLeaseLost: "lease_lost",
	ReasonNodeLost:  "node_lost",

	ReasonUserDisconnected: "user_disconnected",
	ReasonAgentHangUp:      "agent_hang_up",
	ReasonStoreLost:        "store_lost",
	ReasonMediaLost:        "media_lost",
}

// String returns a short name for logs and metric labels ("stop", "idle",
// ...), or "Reason(n)" for a value outside the enum.
func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// MarshalText returns the reason's name, so that JSON (and any text
// encoding) carries "idle", not 2. A value outside the enum is an error.
func (r Reason) MarshalText() ([]byte, error) {
	if r < 0 || int(r) >= len(reasonNames) {
		return nil, fmt.Errorf("session: %v is not a Reason", r)
	}
	return []byte(reasonNames[r]), nil
}

// UnmarshalText parses a reason's name, as MarshalText writes it. An
// unknown name is an error and leaves r unchanged.
func (r *Reason) UnmarshalText(text []byte) error {
	for i, name := range reasonNames {
		if name == string(text) {
			*r = Reason(i)
			return nil
		}
	}
	return fmt.Errorf("session: unknown reason %q", text)
}

// CreateOptions are the session settings from streaming.new. A
// CreateOptions is a plain value, safe to copy.
type CreateOptions struct {
	// AvatarID names the avatar; "" means the catalog's default avatar.
	AvatarID string
	// IdleTimeout is activity_idle_timeout: zero means the manager's
	// default (120 s unless Config.DefaultIdleTimeout says otherwise);
	// outside 30 s–3600 s Create fails with 400175 and nothing is consumed.
	IdleTimeout time.Duration
	// DisableIdleTimeout is disable_idle_timeout: the idle timer never
	// closes the session (IdleTimeout is still validated).
	DisableIdleTimeout bool
	// Label is an opaque string the Manager stores with the session and
	// returns unchanged in its Info (a surface's own facts, such as
	// LiveAvatar's mode and is_sandbox); at most MaxLabelLen bytes, else
	// Create fails with 400/400175 and nothing is consumed.
	Label string
}

// Info is a snapshot of one session, as the manager's methods return it. It
// is a plain value, safe to copy; it does not change when the session does.
type Info struct {
	ID                 string
	Account            string
	AvatarID           string
	State              fsm.State
	Epoch              uint64 // 1 at creation, then one more per transition
	Paid               bool   // !plan.Trial
	PlanName           string // the account's limits.Plan.Name at creation
	CreatedAt          time.Time
	StartedAt          time.Time // zero until started
	ClosedAt           time.Time // zero until closed
	LastActivity       time.Time // zero until connected; then the join and every activity
	IdleTimeout        time.Duration
	DisableIdleTimeout bool
	DurationLimit      time.Duration // the plan's; 0 when none
	Reason             Reason        // why it closed; ReasonNone while open
	Label              string        // CreateOptions.Label, unchanged
}

// Event is one change of one session, as subscribers and Hooks.OnTransition
// see it: the record of a transition that happened, where an fsm.Event is
// the input that asks for one. A session's events come in the order of its transitions with
// Epoch growing by one each time:
//
//   - creation: From fsm.Unknown, To fsm.New, Epoch 1;
//   - each transition: From the state left, To the state entered;
//   - the end of the retention window (the session is forgotten and now
//     answers 10006): From fsm.Closed, To fsm.Unknown.
//
// Reason is set on the events into closing and closed, and on the last one.
// An Event is a plain value, safe to copy.
type Event struct {
	SessionID string
	Account   string
	From, To  fsm.State
	Epoch     uint64
	At        time.Time
	Reason    Reason
}

// Forgotten reports whether e is a session's last event: its retention
// window ended and it is no longer addressable.
func (e Event) Forgotten() bool { return e.From == fsm.Closed && e.To == fsm.Unknown }
