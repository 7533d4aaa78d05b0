package redisstore

import (
	"sync"
	"time"

	"github.com/streamsession/streamsession/session"
)

// manualClock is a session.Clock that moves only when Advance moves it, so
// that a test puts the managers' timers at an exact instant instead of
// sleeping through them. It is safe for concurrent use by multiple
// goroutines.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

// newManualClock returns a clock reading the real time to the millisecond
// (the precision of the store's deadlines), so that what Redis keeps with
// its own clock (key expiries) lies ahead as it would in production.
func newManualClock() *manualClock {
	return &manualClock{now: time.Now().Truncate(time.Millisecond)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) NewTimer(d time.Duration) session.Timer {
	t := &manualTimer{clk: c, c: make(chan time.Time, 1)}
	t.Reset(d)
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	return t
}

// Advance moves the clock by d and fires the timers that fall due.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.armed && !t.at.After(c.now) {
			t.fireLocked()
		}
	}
}

// manualTimer is a timer of a manualClock, with the semantics of
// *time.Timer since Go 1.23 (no stale value after Stop or Reset).
type manualTimer struct {
	clk   *manualClock
	c     chan time.Time
	at    time.Time
	armed bool
}

func (t *manualTimer) C() <-chan time.Time { return t.c }

func (t *manualTimer) Reset(d time.Duration) bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := t.stopLocked()
	t.at, t.armed = t.clk.now.Add(d), true
	if d <= 0 {
		t.fireLocked()
	}
	return was
}

func (t *manualTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	return t.stopLocked()
}

func (t *manualTimer) stopLocked() bool {
	was := t.armed
	t.armed = false
	select {
	case <-t.c:
	default:
	}
	return was
}

func (t *manualTimer) fireLocked() {
	t.armed = false
	select {
	case t.c <- t.clk.now:
	default:
	}
}
