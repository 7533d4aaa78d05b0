package limits_test

import (
	"context"
	"fmt"
	"sync"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
)

// Suspensions is a custom Limiter: it refuses every session of a suspended
// account with the catalog's 403/400631 (User blocked), and hands every
// other call to the Limiter it wraps. Its source of truth would be a
// billing or moderation system; here it is a set. It is safe for
// concurrent use by multiple goroutines, like the Limiter it wraps.
type Suspensions struct {
	limits.Limiter // the limits after the suspension check

	mu        sync.RWMutex
	suspended map[string]bool
}

// Suspend suspends account: its next acquires are refused. Its running
// sessions keep their slots until they close.
func (s *Suspensions) Suspend(account string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.suspended == nil {
		s.suspended = map[string]bool{}
	}
	s.suspended[account] = true
}

// Acquire refuses a suspended account before any limit is checked, so a
// suspended account takes no slot and counts nothing.
func (s *Suspensions) Acquire(ctx context.Context, req limits.Request) (limits.Decision, error) {
	s.mu.RLock()
	suspended := s.suspended[req.Account]
	s.mu.RUnlock()
	if suspended {
		return limits.Decision{}, sserrors.ErrUserBlocked
	}
	return s.Limiter.Acquire(ctx, req)
}

// describe prints what a server would answer for an acquire.
func describe(d limits.Decision, err error) {
	if err == nil && !d.Granted() {
		err = d.Refused.Err()
	}
	if e, ok := sserrors.As(err); ok {
		fmt.Printf("HTTP %d, code %d\n", e.Status, e.Code)
		return
	}
	fmt.Println("granted", d.Lease.SessionID)
}

// Example composes a custom limiter (an account-suspension check) in front
// of the in-memory one: the session manager takes any limits.Limiter.
func Example() {
	mem := limits.NewMemory(limits.MemoryConfig{Capacity: 1000})
	defer mem.Close()
	var limiter limits.Limiter = &Suspensions{Limiter: mem}
	ctx := context.Background()

	for _, id := range []string{"s1", "s2", "s3", "s4"} {
		describe(limiter.Acquire(ctx, limits.Request{Account: "alice", Plan: limits.TrialPlan, SessionID: id}))
	}

	limiter.(*Suspensions).Suspend("mallory")
	describe(limiter.Acquire(ctx, limits.Request{Account: "mallory", Plan: limits.PaidPlan, SessionID: "s5"}))

	// Releasing one of alice's sessions makes room for another.
	_ = limiter.Release(ctx, limits.Lease{Account: "alice", SessionID: "s2"})
	describe(limiter.Acquire(ctx, limits.Request{Account: "alice", Plan: limits.TrialPlan, SessionID: "s4"}))
	fmt.Println("slots held:", mem.InUse())
	// Output:
	// granted s1
	// granted s2
	// granted s3
	// HTTP 429, code 10007
	// HTTP 403, code 400631
	// granted s4
	// slots held: 3
}
