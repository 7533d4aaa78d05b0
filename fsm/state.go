package fsm

import (
	"fmt"
	"strings"

	sserrors "github.com/streamsession/streamsession/errors"
)

// State is a session's lifecycle state. The zero value is Unknown; the five
// real states follow in lifecycle order, so a later state compares greater.
// A State is a plain value, safe to copy and to share between goroutines.
type State int32

// The lifecycle states, in order. Unknown is not a state a session can be in:
// it is the zero value, and what a machine built from an invalid State holds.
const (
	Unknown State = iota
	New
	Connecting
	Connected
	Closing
	Closed
)

// numStates is the number of State values, Unknown included.
const numStates = int(Closed) + 1

// stateNames are the wire names, indexed by State.
var stateNames = [numStates]string{
	Unknown:    "unknown",
	New:        "new",
	Connecting: "connecting",
	Connected:  "connected",
	Closing:    "closing",
	Closed:     "closed",
}

// stateErrors holds the error each state answers to a command or event it
// does not accept, indexed by State. It is filled once at init from the
// errors package so that a refusal never allocates. (A variable
// initialiser rather than an init function, so that tables built from it,
// such as the policy's decisions, are initialised after it.)
var stateErrors = func() (e [numStates]*sserrors.Error) {
	// Unknown (and any State outside the enum) is not something a session can
	// be in: reaching it means corrupt data or a programming error, which the
	// catalog calls an internal server error (500000).
	e[Unknown] = sserrors.ErrInternalServerError
	for s := New; s <= Closed; s++ {
		e[s] = sserrors.SessionState(s.String())
	}
	return e
}()

// valid reports whether s is one of the five lifecycle states.
func (s State) valid() bool { return s >= New && s <= Closed }

// String returns the wire name of s: "new", "connecting", "connected",
// "closing" or "closed"; "unknown" for Unknown and for any value outside the
// enum.
func (s State) String() string {
	if s.valid() {
		return stateNames[s]
	}
	return stateNames[Unknown]
}

// Index returns the position of s in the lifecycle, 0 for New through 4 for
// Closed, so that the wire error code of s is 10001 + Index. It returns -1 for
// Unknown and for any value outside the enum.
func (s State) Index() int {
	if s.valid() {
		return int(s - New)
	}
	return -1
}

// Open reports whether a session in state s is still open: New, Connecting
// or Connected (the states streaming.list reports). Closing, Closed and
// Unknown are not open.
func (s State) Open() bool { return s >= New && s <= Connected }

// States returns the five lifecycle states in order (Unknown excluded). The
// slice is new on every call; callers may modify it.
func States() []State { return []State{New, Connecting, Connected, Closing, Closed} }

// ParseState returns the State whose wire name is name, compared
// case-insensitively ("Connected" parses as Connected). Only the five wire
// names parse: "unknown", the empty string and anything else return Unknown
// and a *sserrors.Error with code 400175 (invalid parameter). It allocates
// only on failure.
func ParseState(name string) (State, error) {
	for s := New; s <= Closed; s++ {
		if strings.EqualFold(name, stateNames[s]) {
			return s, nil
		}
	}
	return Unknown, sserrors.ErrInvalidParameter.WithCause(fmt.Errorf("fsm: unknown session state %.32q", name))
}

// stateByName maps an exact wire name, as looplab reports it, to its State.
func stateByName(name string) State {
	switch name {
	case "new":
		return New
	case "connecting":
		return Connecting
	case "connected":
		return Connected
	case "closing":
		return Closing
	case "closed":
		return Closed
	}
	return Unknown
}

// StateError returns the shared error that a session in state s answers to an
// event or command that s does not accept: the 10001–10005 error naming s
// (HTTP 400). For Unknown and any value outside the enum it returns the
// internal server error (500000), since no session can legitimately be in
// such a state. It never allocates; never modify the returned value (use its
// With* methods, which copy).
func StateError(s State) *sserrors.Error {
	if s.valid() {
		return stateErrors[s]
	}
	return stateErrors[Unknown]
}
