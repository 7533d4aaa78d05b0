// Package fakeclock is a clock for tests that moves only when told to: it
// has the methods of realtime.Clock (Now and AfterFunc), and Advance, which
// runs the timers that fall due. It is safe for concurrent use by multiple
// goroutines.
package fakeclock

import (
	"sort"
	"sync"
	"time"
)

// Clock moves only when Advance is called; due timers run in Advance, in
// the order of their times, outside its lock.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
	armed  chan time.Duration // nil unless made by NewReporting
}

type timer struct {
	at      time.Time
	f       func()
	stopped bool
}

// New returns a Clock that reads now.
func New(now time.Time) *Clock { return &Clock{now: now} }

// NewReporting returns a Clock that reads now and sends the duration of
// every timer set on the returned channel, which holds n; AfterFunc waits
// while it is full.
func NewReporting(now time.Time, n int) (*Clock, <-chan time.Duration) {
	c := &Clock{now: now, armed: make(chan time.Duration, n)}
	return c, c.armed
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc calls f in Advance once d has passed, unless the returned stop
// function is called first (stop reports whether it prevented the call).
func (c *Clock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	if c.armed != nil {
		c.armed <- d
	}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// Pending returns the number of timers neither run nor stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// Advance moves the clock by d and runs the timers that fall due, in order.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*timer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.stopped = true
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}
