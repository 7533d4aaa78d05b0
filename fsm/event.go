package fsm

import (
	"fmt"
	"slices"
	"strconv"

	looplab "github.com/looplab/fsm"
)

// Event moves a session from one state to the next: it is the machine's
// input ("start", "join", ...), what a caller asks for. session.Event is the
// other side, the record of a transition that happened (from, to, epoch,
// reason), as subscribers see it. An Event is a plain value, safe to copy
// and to share between goroutines.
type Event int

// The events of the lifecycle.
const (
	EventStart  Event = iota + 1 // new → connecting (streaming.start)
	EventJoin                    // connecting → connected (the client's realtime socket opened)
	EventClose                   // new, connecting, connected → closing (stop, a timer, shutdown)
	EventClosed                  // closing → closed (everything the session held is released)
)

// numEvents is one more than the largest Event, so that Events index arrays.
const numEvents = int(EventClosed) + 1

// eventNames are the looplab event names, indexed by Event.
var eventNames = [numEvents]string{
	EventStart:  "start",
	EventJoin:   "join",
	EventClose:  "close",
	EventClosed: "closed",
}

func (e Event) valid() bool { return e >= EventStart && e <= EventClosed }

// String returns the event's name ("start", "join", "close", "closed"), or
// "Event(n)" for a value outside the enum.
func (e Event) String() string {
	if e.valid() {
		return eventNames[e]
	}
	return "Event(" + strconv.Itoa(int(e)) + ")"
}

// Events returns the four events in lifecycle order. The slice is new on
// every call; callers may modify it.
func Events() []Event { return []Event{EventStart, EventJoin, EventClose, EventClosed} }

// definition is the one description of the session lifecycle. Every Machine
// runs a looplab machine built from it (looplab only reads it, so all machines
// share this slice), Next is compiled from it at init, and Mermaid draws it.
// Names come from the typed constants, never from string literals.
var definition = looplab.Events{
	{Name: EventStart.String(), Src: []string{New.String()}, Dst: Connecting.String()},
	{Name: EventJoin.String(), Src: []string{Connecting.String()}, Dst: Connected.String()},
	{Name: EventClose.String(), Src: []string{New.String(), Connecting.String(), Connected.String()}, Dst: Closing.String()},
	{Name: EventClosed.String(), Src: []string{Closing.String()}, Dst: Closed.String()},
}

// transitionTable maps (from, event) to the destination state; Unknown means
// the event is not allowed in from.
type transitionTable [numStates][numEvents]State

// next is definition compiled into a lookup table, for Next.
var next = mustCompile(definition)

func mustCompile(defs looplab.Events) transitionTable {
	t, err := compile(defs)
	if err != nil {
		panic(err) // the definition above is wrong: caught by every test run
	}
	return t
}

// compile turns a looplab event table into a transitionTable. It rejects
// names that are not our typed constants' names, duplicate (state, event)
// pairs, and any transition that does not move strictly forward in the
// lifecycle (which also rules out self-transitions, which looplab would
// report as NoTransitionError).
func compile(defs looplab.Events) (transitionTable, error) {
	var t transitionTable
	for _, d := range defs {
		ev := eventByName(d.Name)
		if !ev.valid() {
			return t, fmt.Errorf("fsm: definition: unknown event %q", d.Name)
		}
		dst := stateByName(d.Dst)
		if !dst.valid() {
			return t, fmt.Errorf("fsm: definition: event %q: unknown destination %q", d.Name, d.Dst)
		}
		if len(d.Src) == 0 {
			return t, fmt.Errorf("fsm: definition: event %q has no source state", d.Name)
		}
		for _, name := range d.Src {
			src := stateByName(name)
			switch {
			case !src.valid():
				return t, fmt.Errorf("fsm: definition: event %q: unknown source %q", d.Name, name)
			case dst <= src:
				return t, fmt.Errorf("fsm: definition: event %q: %s → %s does not move forward", d.Name, src, dst)
			case t[src][ev] != Unknown:
				return t, fmt.Errorf("fsm: definition: event %q defined twice from %s", d.Name, src)
			}
			t[src][ev] = dst
		}
	}
	return t, nil
}

func eventByName(name string) Event {
	if i := slices.Index(eventNames[:], name); i > 0 {
		return Event(i)
	}
	return 0
}

// Next returns the state that ev leads to from from. When ev is not allowed
// in from (including an Event or State outside the enums) it returns from
// unchanged and StateError(from): the 10001–10005 error naming from, or
// 500000 when from is Unknown. It is a pure function of the lifecycle
// definition, safe for concurrent use, and never allocates; a store uses it
// to compute the new state of a compare-and-set.
func Next(from State, ev Event) (State, error) {
	if from.valid() && ev.valid() {
		if to := next[from][ev]; to != Unknown {
			return to, nil
		}
	}
	return from, StateError(from)
}
