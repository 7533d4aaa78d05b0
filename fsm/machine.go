package fsm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	looplab "github.com/looplab/fsm"
	sserrors "github.com/streamsession/streamsession/errors"
)

// Machine is one session's state machine. It is safe for concurrent use by
// multiple goroutines: transitions are serialised by the Machine (so of two
// goroutines firing the same event, exactly one succeeds), and State is a
// lock-free atomic load that never waits for a transition in progress.
//
// A Machine runs a github.com/looplab/fsm machine built from the package's
// lifecycle definition; no looplab type or error ever reaches callers.
type Machine struct {
	mu    sync.Mutex   // serialises Fire; looplab's own locking is not enough (its state read races)
	state atomic.Int32 // mirror of core's state, for lock-free reads
	core  *looplab.FSM // guarded by mu
}

// newCore returns a looplab machine in state s. It registers no callbacks
// (nil map): nothing can call Event or Can re-entrantly from a before_ or
// leave_ callback, no callback name can be misspelled, and no callback can
// cancel or defer a transition.
func newCore(s State) *looplab.FSM {
	return looplab.NewFSM(s.String(), definition, nil)
}

// NewMachine returns a machine in state initial, usually New (a store
// rebuilding a session passes the state it read). A value outside the five
// lifecycle states gives a machine in Unknown, on which every Fire fails with
// the internal server error (500000) and changes nothing.
func NewMachine(initial State) *Machine {
	if !initial.valid() {
		initial = Unknown
	}
	m := &Machine{core: newCore(initial)}
	m.state.Store(int32(initial))
	return m
}

// State returns the current state without locking. During a Fire it returns
// the state before or after the transition, never anything else.
func (m *Machine) State() State { return State(m.state.Load()) }

// Fire applies ev. On success it returns the state left and the state
// entered, and the change is visible to State before Fire returns.
//
// An event that the current state does not accept (see Next) returns the
// current state twice and StateError of it: 10001–10005 naming the state the
// session is in, or 500000 for a machine in Unknown. A ctx already done
// returns ctx.Err() unwrapped. In both cases nothing changes. A ctx cancelled
// after Fire has checked it does not interrupt the transition, which is
// instantaneous: the machine never hands ctx to looplab, so looplab/fsm issue
// #115 (a transition cancelled midway leaves the machine refusing every later
// event) cannot happen. A nil ctx is treated as context.Background().
func (m *Machine) Fire(ctx context.Context, ev Event) (from, to State, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	from = m.State()
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return from, from, err
		}
	}
	// Refuse illegal events here, from the table compiled out of the same
	// definition: the answer is the same as looplab's and costs no allocation.
	if _, err := Next(from, ev); err != nil {
		return from, from, err
	}
	err = m.core.Event(context.Background(), eventNames[ev])
	if err != nil && isWedged(err) {
		// Cannot happen with a background context and no callbacks; if looplab
		// ever does wedge, rebuild it where we know it is and try once more.
		m.core = newCore(from)
		err = m.core.Event(context.Background(), eventNames[ev])
	}
	if err = translate(from, err); err != nil {
		return from, from, err
	}
	// The state is whatever looplab now says, not what Next predicted: the
	// tests prove the two agree for every (state, event) pair.
	to = stateByName(m.core.Current())
	m.state.Store(int32(to))
	return from, to, nil
}

// isWedged reports whether err is looplab's refusal because an earlier
// transition never completed. Call it only with a non-nil err: its errors.As
// target escapes, so it allocates.
func isWedged(err error) bool {
	var inTransition looplab.InTransitionError
	return errors.As(err, &inTransition)
}

// translate maps an error from looplab's Event, for a machine in state
// current, to ours. looplab's errors are value types, so errors.As needs value
// targets (a pointer target would never match).
func translate(current State, err error) error {
	if err == nil {
		return nil
	}
	var (
		noTransition looplab.NoTransitionError
		invalidEvent looplab.InvalidEventError
		unknownEvent looplab.UnknownEventError
		canceled     looplab.CanceledError
	)
	switch {
	case errors.As(err, &noTransition) && noTransition.Err == nil:
		// A self-transition is a success that changed nothing, never an error.
		return nil
	case errors.As(err, &invalidEvent), errors.As(err, &unknownEvent):
		return StateError(current)
	// Context errors, bare or wrapped in CanceledError or NoTransitionError,
	// go back to the caller as the context package's own values.
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.As(err, &canceled):
		return sserrors.ErrInternalServerError.WithCause(errors.New("fsm: transition canceled"))
	}
	// InTransitionError (after a rebuild), AsyncError, InternalError, ...:
	// none can occur without callbacks; keep looplab's text as the cause only.
	return sserrors.ErrInternalServerError.WithCause(errors.New("fsm: looplab: " + err.Error()))
}
