package session

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/streamsession/streamsession/fsm"
)

// Store keeps sessions for a Manager. MemoryStore is the in-memory
// implementation; a store shared by several server nodes (Redis) implements
// the same contract, so the Manager never changes. Implementations are safe
// for concurrent use by multiple goroutines.
//
// The contract, for implementers:
//
//   - A Store serves one Manager, which calls Watch once, before anything
//     else.
//   - Sessions are addressed by (account, id). A session that does not exist
//     and a session of another account are indistinguishable: every method
//     taking an account and an id fails with an error matching
//     sserrors.ErrSessionNotFound (10006) for both.
//   - Every change is atomic and has an epoch: Insert creates epoch 1, each
//     Transition adds exactly one, Delete's event adds one more. Touch is not
//     a transition: it changes only LastActivity and leaves the epoch alone.
//   - Transition applies an fsm.Event. An event the current state does not
//     accept fails with fsm.StateError of that state (10001–10005), changes
//     nothing and returns the current record. A store without a lock per
//     session reads the record, computes fsm.Next, and writes with a
//     compare-and-set on the epoch it read: when another writer got there
//     first it returns ErrConflict (never a silent success), and the Manager
//     retries. A Change with a non-zero Epoch is conditional: it applies only
//     if the record is still at that epoch, and fails with ErrConflict
//     otherwise (the Manager's timers use this so that a timer never closes a
//     session that moved on since the timer was found due).
//   - On success a store sets the fields of the state entered: StartedAt on
//     connecting, LastActivity on connected, Reason on closing, ClosedAt on
//     closed, each from Change.At (Reason from Change.Reason).
//   - Every committed change (Insert, Transition, Delete) is reported once to
//     the function given to Watch, as an Event, in the order of the session's
//     epochs. MemoryStore calls it synchronously while the session is locked;
//     a distributed store delivers the changes made by every node (for
//     example from Redis pub/sub), so that a node's subscribers see sessions
//     changed through other nodes.
//   - Timers are the store's to find: Due returns the sessions whose
//     Record.NextTimeout is at or before now, once per deadline (a session
//     reported due is not reported again for that deadline unless it
//     changes), and the time of the next deadline it knows of; Wake signals
//     when a deadline earlier than that next one appears. In a cluster each
//     deadline should be handed to one node only, and survive the death of
//     the node that set it. A distributed store also reports, as
//     TimeoutOrphaned, the sessions stuck in closing (their closer gave up
//     or died, or could not release the slot): the Manager finishes their
//     close.
//   - A store shared by several nodes implements SharedStore: its sessions
//     belong to the service, not to the node that created them. A node's
//     death ends none of them; the other nodes fire their timers.
//   - Range visits the sessions this store instance is responsible for that
//     are not closed yet: the Manager renews their leases (unless the store
//     is a SharedStore) and closes them when it shuts down. A store shared
//     by several nodes visits the sessions created through its own node.
//   - Every method honours ctx for its round trips; MemoryStore has none and
//     only checks ctx on entry.
type Store interface {
	// Watch registers fn to receive every committed change. It fails when
	// the store already serves a Manager.
	Watch(fn func(Event)) error
	// Insert stores a new session: rec.State must be fsm.New and rec.Epoch
	// 1. It fails with ErrExists when the id is taken. It returns the record
	// as stored.
	Insert(ctx context.Context, rec Record) (Record, error)
	// Get returns the session.
	Get(ctx context.Context, account, id string) (Record, error)
	// List returns account's open sessions (new, connecting, connected),
	// sorted by CreatedAt, sessions created at the same instant in the order
	// they were inserted. The slice is the caller's.
	List(ctx context.Context, account string) ([]Record, error)
	// Transition applies ch.Event and returns the record after it and the
	// state it left. On failure it returns the current record (when there
	// is one) and its state.
	Transition(ctx context.Context, account, id string, ch Change) (rec Record, from fsm.State, err error)
	// Touch records activity at at (the later of at and the current
	// LastActivity is kept), only on a connected session; on any other state
	// it changes nothing. It returns the record, whose State tells the
	// Manager whether the activity counted.
	Touch(ctx context.Context, account, id string, at time.Time) (Record, error)
	// Delete forgets a closed session whose epoch is still epoch (else
	// ErrConflict, or the state error when it is not closed) and reports
	// the Event From fsm.Closed To fsm.Unknown at at. It returns the record
	// as it was.
	Delete(ctx context.Context, account, id string, epoch uint64, at time.Time) (Record, error)
	// Range calls fn, outside any lock, for each session not yet closed
	// (see the contract above) until fn returns false. Sessions created or
	// closed during Range may or may not be visited. fn may call the store.
	Range(ctx context.Context, fn func(Record) bool) error
	// Due appends to buf[:0] the sessions whose timer is due at now (at most
	// cap(buf) of them when cap(buf) > 0) and returns them with the next
	// deadline the store knows of (the zero Time when none; now when more
	// are due than buf could hold).
	Due(ctx context.Context, now time.Time, buf []Due) (due []Due, next time.Time, err error)
	// Wake returns a channel that receives a value when a deadline earlier
	// than the last next returned by Due appears. It may return nil (a
	// store that relies on polling).
	Wake() <-chan struct{}
}

// SharedStore is a Store shared by several server nodes, whose sessions
// outlive the node that created them: any node serves, times and closes
// any session. With one, the Manager keeps a session's slot
// (limits.Limiter.Keep) as soon as the session is recorded, instead of
// renewing its lease: an idle session then costs the limiter nothing, and
// the node that closes the session, whichever it is, releases the slot.
// A failed release leaves the session closing, to be finished through
// TimeoutOrphaned, since a kept slot never expires.
type SharedStore interface {
	Store
	// Shared reports whether the sessions outlive this node; a store
	// that answers false is treated as a plain Store.
	Shared() bool
}

// ErrConflict is returned by a Store when a conditional change lost a race:
// the session's epoch is no longer the one the change was computed from.
// The Manager retries unconditional changes and drops timer firings that
// conflict; it returns ErrConflict (wrapped in a 500000 error) only when
// retries do not settle.
var ErrConflict = errors.New("session: store: conflicting change (epoch moved)")

// ErrExists is returned by Store.Insert for an id already in use.
var ErrExists = errors.New("session: store: session id already exists")

// Change is one transition asked of a Store. A Change is a plain value.
type Change struct {
	// Event is the fsm event to apply.
	Event fsm.Event
	// At is when it happens: it becomes StartedAt, LastActivity or ClosedAt
	// of the state entered, and the Event's At.
	At time.Time
	// Reason is recorded when the session enters closing.
	Reason Reason
	// Epoch, when non-zero, makes the change conditional on the session
	// still being at that epoch (else ErrConflict).
	Epoch uint64
}

// Record is a session as a Store keeps it: the Info the Manager returns,
// and the two timers the Manager sets at creation. It is a plain value, safe
// to copy.
type Record struct {
	Info
	JoinTimeout time.Duration // closes a session still new or connecting this long after CreatedAt
	Retention   time.Duration // how long a closed session stays addressable (10005) before it is forgotten
}

// Timeout names one of a session's timers. A Timeout is a plain value.
type Timeout uint8

// The timers. When two fall due at the same instant, the one listed first
// wins (it is the reason the session closes).
const (
	TimeoutNone      Timeout = iota
	TimeoutJoin              // new or connecting at CreatedAt + JoinTimeout
	TimeoutDuration          // connecting or connected at StartedAt + DurationLimit
	TimeoutIdle              // connected at LastActivity + IdleTimeout, unless DisableIdleTimeout
	TimeoutRetention         // closed at ClosedAt + Retention: the session is forgotten
	// TimeoutOrphaned is reported only by a distributed Store, never by
	// NextTimeout: the session has been closing for longer than any close
	// takes (the caller that began the close gave up or died, or the
	// limiter did not answer its release). The Manager finishes the close
	// (releases its slot, closed), conditionally on Record.Epoch; it
	// ignores TimeoutOrphaned for a session in any other state.
	TimeoutOrphaned
)

var timeoutNames = [...]string{"none", "join", "duration", "idle", "retention", "orphaned"}

// String returns the timer's name ("join", "duration", "idle", "retention",
// "orphaned").
func (t Timeout) String() string {
	if int(t) < len(timeoutNames) {
		return timeoutNames[t]
	}
	return "Timeout(" + strconv.Itoa(int(t)) + ")"
}

// Reason returns the reason a session closes when t fires (ReasonNone for
// TimeoutRetention, which forgets an already closed session, and for
// TimeoutOrphaned, which finishes a close whose reason is recorded).
func (t Timeout) Reason() Reason {
	switch t {
	case TimeoutJoin:
		return ReasonJoin
	case TimeoutDuration:
		return ReasonDuration
	case TimeoutIdle:
		return ReasonIdle
	}
	return ReasonNone
}

// Due is a session whose timer fired, as Store.Due reports it.
type Due struct {
	Record  Record  // the session when it was found due
	Timeout Timeout // the timer that fired
	At      time.Time
}

// NextTimeout returns the session's next deadline and which timer it is, or
// TimeoutNone when no timer applies (a closing session, or a connected one
// with neither an idle timeout nor a duration limit). Every Store computes
// deadlines with it, so that all stores agree.
func (r Record) NextTimeout() (time.Time, Timeout) {
	at, t := timers{
		state:    r.State,
		created:  nanos(r.CreatedAt),
		started:  nanos(r.StartedAt),
		closed:   nanos(r.ClosedAt),
		activity: nanos(r.LastActivity),

		idle:          int64(r.IdleTimeout),
		durationLimit: int64(r.DurationLimit),
		join:          int64(r.JoinTimeout),
		retention:     int64(r.Retention),
		disableIdle:   r.DisableIdleTimeout,
	}.next()
	if t == TimeoutNone {
		return time.Time{}, TimeoutNone
	}
	return fromNanos(at), t
}

// timers are the fields of a session that its deadlines depend on, in the
// form MemoryStore keeps them: times in Unix nanoseconds (0 meaning unset),
// durations in nanoseconds.
type timers struct {
	state                                fsm.State
	disableIdle                          bool
	created, started, closed, activity   int64
	idle, durationLimit, join, retention int64
}

// next is NextTimeout on timers.
func (f timers) next() (int64, Timeout) {
	s := f.state
	var (
		at   int64
		kind = TimeoutNone
	)
	consider := func(d int64, k Timeout) {
		if kind == TimeoutNone || d < at {
			at, kind = d, k
		}
	}
	switch s {
	case fsm.New, fsm.Connecting, fsm.Connected:
		if s != fsm.Connected && f.join > 0 {
			consider(f.created+f.join, TimeoutJoin)
		}
		if s != fsm.New && f.durationLimit > 0 && f.started != 0 {
			consider(f.started+f.durationLimit, TimeoutDuration)
		}
		if s == fsm.Connected && !f.disableIdle && f.idle > 0 {
			consider(f.activity+f.idle, TimeoutIdle)
		}
	case fsm.Closed:
		consider(f.closed+f.retention, TimeoutRetention)
	}
	return at, kind
}

// nanos returns t as Unix nanoseconds, 0 for the zero Time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos, in UTC.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
