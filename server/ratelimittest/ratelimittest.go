// Package ratelimittest is the conformance suite of server.RateLimiter:
// any implementation runs it from its own tests to prove that it honours
// the contract written on server.RateLimiter.
//
//	func TestConformance(t *testing.T) {
//		ratelimittest.Run(t, func(t *testing.T) server.RateLimiter {
//			return server.NewMemoryRateLimiter(server.MemoryRateLimiterConfig{})
//		})
//	}
//
// The suite runs on the limiter's own clock (Redis takes its time from
// TIME): its rates are slow (one request every 100 s or more), so that the
// second or so a case takes in real time never refills a budget, and the
// RetryAfter it checks has a margin of five seconds. Every case is a
// subtest with a limiter of its own and keys of its own, and checks exact
// counts.
package ratelimittest

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/streamsession/streamsession/server"
)

// Run runs every case against limiters from newLimiter, which builds a
// fresh one for each case (it may share a backend between cases: the keys
// never repeat).
func Run(t *testing.T, newLimiter func(t *testing.T) server.RateLimiter) {
	t.Run("burst then refusal", func(t *testing.T) {
		l, key := newLimiter(t), newKey()
		limit := server.RateLimit{PerSecond: 0.01, Burst: 3} // one every 100 s
		for i := range 3 {
			if d := allow(t, l, key, limit); !d.Allowed {
				t.Fatalf("Allow #%d = %+v, want allowed (burst 3)", i+1, d)
			}
		}
		d := allow(t, l, key, limit)
		if d.Allowed || d.RetryAfter <= 95*time.Second || d.RetryAfter > 100*time.Second {
			t.Fatalf("Allow #4 = %+v, want refused with a RetryAfter of about 100s", d)
		}
	})
	t.Run("a refusal takes nothing", func(t *testing.T) {
		l, key := newLimiter(t), newKey()
		limit := server.RateLimit{PerSecond: 0.005} // burst 1, one every 200 s
		if d := allow(t, l, key, limit); !d.Allowed {
			t.Fatalf("first Allow = %+v, want allowed", d)
		}
		first := allow(t, l, key, limit)
		for i := range 5 {
			d := allow(t, l, key, limit)
			if d.Allowed || d.RetryAfter > first.RetryAfter || d.RetryAfter <= 195*time.Second {
				t.Fatalf("refusal #%d = %+v after %+v: a refusal must not push the next request back", i+2, d, first)
			}
		}
	})
	t.Run("keys are independent", func(t *testing.T) {
		l, a, b := newLimiter(t), newKey(), newKey()
		limit := server.RateLimit{PerSecond: 0.01, Burst: 2}
		for range 4 {
			allow(t, l, a, limit)
		}
		for i := range 2 {
			if d := allow(t, l, b, limit); !d.Allowed {
				t.Fatalf("Allow #%d of another key = %+v, want allowed", i+1, d)
			}
		}
	})
	t.Run("exactly the burst passes under concurrency", func(t *testing.T) {
		l, key := newLimiter(t), newKey()
		limit := server.RateLimit{PerSecond: 0.01, Burst: 7}
		var mu sync.Mutex
		passed := 0
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				d, err := l.Allow(context.Background(), key, limit)
				if err != nil {
					t.Errorf("Allow: %v", err)
					return
				}
				if d.Allowed {
					mu.Lock()
					passed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if passed != 7 {
			t.Fatalf("%d of 50 concurrent calls passed, want 7", passed)
		}
	})
	t.Run("unlimited", func(t *testing.T) {
		l, key := newLimiter(t), newKey()
		for range 20 {
			if d := allow(t, l, key, server.RateLimit{}); !d.Allowed {
				t.Fatalf("Allow(unlimited) = %+v, want allowed", d)
			}
		}
	})
}

func allow(t *testing.T, l server.RateLimiter, key string, limit server.RateLimit) server.RateDecision {
	t.Helper()
	d, err := l.Allow(context.Background(), key, limit)
	if err != nil {
		t.Fatalf("Allow(%q, %+v): %v", key, limit, err)
	}
	return d
}

// newKey returns an account name no other case uses.
func newKey() string { return "acct-" + rand.Text() }
