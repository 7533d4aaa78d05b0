package sessiontest

import (
	"slices"
	"sync"
	"time"

	"github.com/streamsession/streamsession/session"
)

// Clock is a session.Clock that moves only when Advance is called: its
// timers fire in Advance, once the clock reaches their deadline. Like a
// time.Timer since Go 1.23, a timer's channel holds no stale value after
// Reset or Stop. It also has AfterFunc, so it is the server's Clock too
// (server.Config.Clock: simulated speech, token lifetimes). A Clock is safe
// for concurrent use by multiple goroutines.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

// NewClock returns a Clock that reads now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

var _ session.Clock = (*Clock)(nil)

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a started timer that fires once the clock has moved d
// forward (at once when d <= 0).
func (c *Clock) NewTimer(d time.Duration) session.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{clock: c, c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	t.arm(d)
	return t
}

// AfterFunc calls f in Advance once the clock has moved d forward (a d <= 0
// in the next Advance), unless the returned stop function is called first;
// stop reports whether it prevented the call.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{clock: c, at: c.now.Add(d), armed: true, fn: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := t.armed
		t.armed = false
		return was
	}
}

// Advance moves the clock d forward and fires every timer whose deadline it
// reaches; the functions of AfterFunc run last, in the order of their
// deadlines, on the caller's goroutine and without the clock's lock (they
// may use the clock). A negative d is treated as 0.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(max(d, 0))
	var due []*timer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.armed && !t.at.After(c.now) {
			if t.fn != nil {
				t.armed = false
				due = append(due, t)
			} else {
				t.fire()
			}
		}
		if t.fn == nil || t.armed {
			keep = append(keep, t) // a spent AfterFunc is dropped
		}
	}
	clear(c.timers[len(keep):])
	c.timers = keep
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *timer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		t.fn()
	}
}

// Pending returns the number of timers that have not fired or been stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.armed {
			n++
		}
	}
	return n
}

// timer is one timer of a Clock; its fields are guarded by the clock's mutex.
type timer struct {
	clock *Clock
	c     chan time.Time
	at    time.Time
	armed bool
	fn    func() // AfterFunc's; nil for NewTimer's
}

func (t *timer) C() <-chan time.Time { return t.c }

// arm sets the deadline d from now; the clock's mutex is held.
func (t *timer) arm(d time.Duration) {
	t.at, t.armed = t.clock.now.Add(d), true
	if d <= 0 {
		t.fire()
	}
}

// fire sends the clock's time; the clock's mutex is held.
func (t *timer) fire() {
	t.armed = false
	select {
	case t.c <- t.clock.now:
	default:
	}
}

// drain removes a value not yet received; the clock's mutex is held.
func (t *timer) drain() {
	select {
	case <-t.c:
	default:
	}
}

// Reset re-arms the timer d from the clock's time; it reports whether the
// timer was armed.
func (t *timer) Reset(d time.Duration) bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.armed
	t.drain()
	t.arm(d)
	return was
}

// Stop disarms the timer; it reports whether the timer was armed.
func (t *timer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.armed
	t.armed = false
	t.drain()
	return was
}
