package session

import (
	"sync/atomic"
	"time"
)

// SystemClock is the Clock of the time package, made cheaper to read: the
// Manager reads the time on every call that changes a session (about five
// times per session's life), and on virtual machines time.Now, which reads
// both the wall clock and the monotonic clock, costs tens of nanoseconds
// more than a monotonic reading alone. SystemClock is the default Clock of a
// Manager. It is a plain value, safe for concurrent use by multiple
// goroutines (all SystemClocks share one anchor).
//
// Now reads only the monotonic clock and adds the time elapsed to an anchor,
// a time.Now reading that is re-taken once more than a second has passed
// since it was taken. What it returns:
//
//   - carries a monotonic reading, exactly the one time.Now would have
//     carried at that instant, so that Sub, Before, After and Equal between
//     its readings (and time.Now's) are exact and never run backwards;
//   - has the wall-clock reading of time.Now at that instant, except after
//     a step of the system's wall clock relative to its monotonic clock (the
//     clock set by hand or by an NTP step, a leap second, a suspend of the
//     machine): such a step shows in Now at most one second (of monotonic
//     time) after it happened. On Linux, NTP's gradual corrections change
//     both clocks alike and cause no difference. Between anchors the
//     wall reading never runs backwards; at a re-anchor it moves with a step,
//     as time.Now's does. (Like a time.Now reading, an anchor lags by the
//     delay, if any, between its reads of the two clocks; the anchor is the
//     better of two readings.)
//
// Inside a testing/synctest bubble, where time.Now is the bubble's fake
// clock and carries no monotonic reading, Now returns time.Now() itself.
type SystemClock struct{}

// reanchorInterval bounds how long SystemClock keeps deriving the wall time
// from one time.Now reading: the delay with which it follows a step of the
// system's wall clock.
const reanchorInterval = time.Second

// clockAnchor is the time.Now reading SystemClock counts from. It always
// carries a monotonic reading (see systemNow).
var clockAnchor atomic.Pointer[time.Time]

// Now returns the current time: see SystemClock for how it relates to
// time.Now.
func (SystemClock) Now() time.Time { return systemNow(&clockAnchor) }

// systemNow is SystemClock.Now counting from *anchor.
func systemNow(anchor *atomic.Pointer[time.Time]) time.Time {
	if a := anchor.Load(); a != nil {
		// One monotonic reading (runtime nanotime): a carries one, so
		// time.Since does not read the wall clock. Inside a synctest
		// bubble time.Since compares a with the fake clock, which is years
		// away from a real anchor, and d falls outside the window.
		if d := time.Since(*a); d >= 0 && d <= reanchorInterval {
			return a.Add(d) // Add moves the wall and the monotonic readings alike
		}
	}
	t := time.Now()
	if !hasMonotonic(t) {
		return t // inside a synctest bubble: its fake clock
	}
	// time.Now reads the wall clock, then the monotonic clock: were the
	// thread held up between the two, every reading until the next anchor
	// would lag by that delay. Of two readings, the anchor is the one whose
	// wall clock is furthest ahead of its monotonic clock: the shorter delay.
	a, u := t, time.Now()
	if u.UnixNano()-t.UnixNano() > int64(u.Sub(t)) { // Sub compares the monotonic readings
		a = u
	}
	anchor.Store(&a)
	return a.Add(u.Sub(a)) // the time of u, counted from the anchor
}

// hasMonotonic tells whether t carries a monotonic clock reading (which
// Round(0) strips).
func hasMonotonic(t time.Time) bool { return t != t.Round(0) }

// NewTimer returns a time.Timer.
func (SystemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time        { return t.t.C }
func (t systemTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
func (t systemTimer) Stop() bool                 { return t.t.Stop() }
