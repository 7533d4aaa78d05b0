package fsm

// TEMPORARY: the exported API of fsm/, bodies to be implemented.

import (
	"context"
)

// State is a session's lifecycle state. The zero value is Unknown.
type State int32

const (
	Unknown State = iota
	New
	Connecting
	Connected
	Closing
	Closed
)

// String returns the wire name ("new", "connecting", ...; "unknown").
func (s State) String() string { panic("unimplemented") }

// ParseState parses a wire name, case-insensitively.
func ParseState(name string) (State, error) { panic("unimplemented") }

// Event moves a session from one state to the next.
type Event int

const (
	EventStart  Event = iota + 1 // new → connecting
	EventJoin                    // connecting → connected (the client's realtime socket opened)
	EventClose                   // new, connecting, connected → closing
	EventClosed                  // closing → closed
)

func (e Event) String() string { panic("unimplemented") }

// Next returns the state that ev leads to from from, or the 10001–10005 error
// of from when ev is not allowed there. It never allocates.
func Next(from State, ev Event) (State, error) { panic("unimplemented") }

// Machine is one session's state machine. Safe for concurrent use; State is lock-free.
type Machine struct{}

// NewMachine returns a machine in state initial.
func NewMachine(initial State) *Machine { panic("unimplemented") }

// State returns the current state without locking.
func (m *Machine) State() State { panic("unimplemented") }

// Fire applies ev. On success it returns the state left and the state entered.
// An illegal event returns the 10001–10005 error for the current state and
// changes nothing.
func (m *Machine) Fire(ctx context.Context, ev Event) (from, to State, err error) {
	panic("unimplemented")
}

// Command is an API command subject to the command policy.
type Command int

const (
	CmdStart Command = iota + 1
	CmdICE
	CmdTask
	CmdInterrupt
	CmdKeepAlive
	CmdStartListening
	CmdStopListening
	CmdStop
)

func (c Command) String() string { panic("unimplemented") }

// Allow returns nil when state s accepts cmd and otherwise the 10001–10005
// error of s. It never allocates.
func Allow(s State, cmd Command) error { panic("unimplemented") }

// Mermaid returns the machine's Mermaid state diagram.
func Mermaid() string { panic("unimplemented") }
