// Package fsm owns the session lifecycle of streamsession: the states a
// streaming-avatar session goes through (new → connecting → connected →
// closing → closed), the events that move it, and the command policy saying
// which API command each state accepts.
//
// Where to start: Machine is one session's state machine (NewMachine, Fire,
// State); Next is the same lifecycle as a pure function, for stores that
// compare-and-set a state they keep elsewhere; Allow is the command policy.
// Every refusal is the shared 10001–10005 error of the errors package naming
// the state the session is in (StateError), so Allow and Next never allocate.
//
// One definition, a github.com/looplab/fsm event table, is the source of
// truth: every Machine runs a looplab machine built from it, Next is compiled
// from it at init, and Mermaid draws it. looplab stays an implementation
// detail: its types and errors never reach callers, it is given no callbacks
// (so none can re-enter it or be misspelled) and no cancellable context (so a
// cancellation mid-transition cannot wedge it, looplab/fsm #115), and the
// Machine serialises transitions itself because looplab's own state read
// races under concurrent events.
//
// Concurrency: everything in the package is safe for concurrent use by
// multiple goroutines. A Machine serialises its transitions; its State is a
// lock-free atomic load.
package fsm
