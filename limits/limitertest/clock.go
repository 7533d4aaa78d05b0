package limitertest

import (
	"sync/atomic"
	"time"
)

// Clock is a fake clock for limiters that take an injected one: it reads a
// fixed instant until Advance moves it. It is safe for concurrent use by
// multiple goroutines.
type Clock struct {
	nanos atomic.Int64 // Unix nanoseconds
}

// NewClock returns a Clock that reads start.
func NewClock(start time.Time) *Clock {
	c := new(Clock)
	c.nanos.Store(start.UnixNano())
	return c
}

// Now returns the clock's current time, in UTC.
func (c *Clock) Now() time.Time { return time.Unix(0, c.nanos.Load()).UTC() }

// Advance moves the clock forward by d (backward for a negative d).
func (c *Clock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }
