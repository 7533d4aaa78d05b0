package sessiontest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// Call is one call of a hook under test, as recorded by Recorder.Call.
// It is a plain value.
type Call struct {
	// Hook names the hook ("bill", "notify").
	Hook string
	// SessionID is the session it was called for.
	SessionID string
	// Detail is what the test wants to compare ("90s", "reason idle").
	Detail string
}

// String formats the call as "hook(#hash) detail", the session named by
// session.ShortHash so that ids stay out of test logs.
func (c Call) String() string {
	s := c.Hook + "(#" + session.ShortHash(c.SessionID) + ")"
	if c.Detail != "" {
		s += " " + c.Detail
	}
	return s
}

// Recorder records the Events of a Manager and the calls of the hooks under
// test, in the order they happen. Use Record as session.Hooks.OnTransition
// (called synchronously, in each session's order) or as a subscriber
// (Manager.Subscribe, or Tap.Subscribe). A Recorder is safe for concurrent
// use by multiple goroutines; its zero value is ready to use.
type Recorder struct {
	mu      sync.Mutex
	events  []session.Event
	calls   []Call
	changed chan struct{} // closed and replaced on every record
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Record records one Event.
func (r *Recorder) Record(e session.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	r.notify()
}

// Call records one call of a hook under test.
func (r *Recorder) Call(hook, sessionID, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, Call{Hook: hook, SessionID: sessionID, Detail: detail})
	r.notify()
}

// notify wakes the waiters; r.mu is held.
func (r *Recorder) notify() {
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// Events returns the Events recorded so far, in order.
func (r *Recorder) Events() []session.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Calls returns the hook calls recorded so far, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// States returns the states the session entered, in the order recorded
// (its last event, forgetting it, is left out).
func (r *Recorder) States(sessionID string) []fsm.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	var states []fsm.State
	for _, e := range r.events {
		if e.SessionID == sessionID && !e.Forgotten() {
			states = append(states, e.To)
		}
	}
	return states
}

// WaitState waits until the session has entered state s, and returns the
// Event that moved it there (its Reason says why, for closing and closed).
// It returns ctx's error, naming the states seen, when ctx ends first.
func (r *Recorder) WaitState(ctx context.Context, sessionID string, s fsm.State) (session.Event, error) {
	var found session.Event
	err := r.wait(ctx, func() bool {
		for _, e := range r.events {
			if e.SessionID == sessionID && e.To == s && !e.Forgotten() {
				found = e
				return true
			}
		}
		return false
	})
	if err != nil {
		return session.Event{}, fmt.Errorf("sessiontest: session #%s never entered %s (states %s): %w",
			session.ShortHash(sessionID), s, FormatStates(r.States(sessionID)), err)
	}
	return found, nil
}

// WaitCalls waits until at least n hook calls are recorded. It returns
// ctx's error, naming the calls seen, when ctx ends first.
func (r *Recorder) WaitCalls(ctx context.Context, n int) error {
	err := r.wait(ctx, func() bool { return len(r.calls) >= n })
	if err != nil {
		return fmt.Errorf("sessiontest: %d hook calls, want %d (%s): %w", len(r.Calls()), n, formatCalls(r.Calls()), err)
	}
	return nil
}

// wait waits until done (called with r.mu held) is true, or ctx ends.
func (r *Recorder) wait(ctx context.Context, done func() bool) error {
	for {
		r.mu.Lock()
		if done() {
			r.mu.Unlock()
			return nil
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// AssertStates reports whether the session entered exactly the states want,
// in order; otherwise it fails t with what was seen:
//
//	session #1a2b3c: states new → connecting → closing → closed,
//	want new → connecting → connected → closing → closed
//	events of the session: unknown → new; new → connecting; connecting → closing (join); closing → closed (join)
func (r *Recorder) AssertStates(t testing.TB, sessionID string, want ...fsm.State) bool {
	t.Helper()
	got := r.States(sessionID)
	if slices.Equal(got, want) {
		return true
	}
	var evs []string
	for _, e := range r.Events() {
		if e.SessionID == sessionID {
			evs = append(evs, formatEvent(e))
		}
	}
	t.Errorf("session #%s: states %s,\nwant %s\nevents of the session: %s",
		session.ShortHash(sessionID), FormatStates(got), FormatStates(want), orNone(strings.Join(evs, "; ")))
	return false
}

// AssertCalls reports whether the hook calls recorded are exactly want, in
// order, each written as Call.String writes it ("bill(#1a2b3c) 1m30s");
// otherwise it fails t with both lists.
func (r *Recorder) AssertCalls(t testing.TB, want ...string) bool {
	t.Helper()
	calls := r.Calls()
	got := make([]string, len(calls))
	for i, c := range calls {
		got[i] = c.String()
	}
	if slices.Equal(got, want) {
		return true
	}
	t.Errorf("hook calls:\n  %s\nwant:\n  %s", orNone(strings.Join(got, "\n  ")), orNone(strings.Join(want, "\n  ")))
	return false
}

// FormatStates writes states as "new → connecting → connected", or "none".
func FormatStates(states []fsm.State) string {
	names := make([]string, len(states))
	for i, s := range states {
		names[i] = s.String()
	}
	return orNone(strings.Join(names, " → "))
}

func formatEvent(e session.Event) string {
	s := e.From.String() + " → " + e.To.String()
	if e.Reason != session.ReasonNone {
		s += " (" + e.Reason.String() + ")"
	}
	return s
}

func formatCalls(calls []Call) string {
	s := make([]string, len(calls))
	for i, c := range calls {
		s[i] = c.String()
	}
	return orNone(strings.Join(s, "; "))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
