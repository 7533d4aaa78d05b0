package limits_test

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/limitertest"
)

// TestMemoryModel checks Memory's slot decisions against a model: a map of
// live slots with their expiries. Paid plans only (the conformance suite
// covers minutes); plan limits up to 24 so that an account crosses the size
// at which Memory indexes its slots, with and without a capacity, with
// sweeps in between.
func TestMemoryModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const ttl = time.Minute
		capacity := rapid.IntRange(0, 30).Draw(t, "capacity")
		clock := limitertest.NewClock(start)
		m := limits.NewMemory(limits.MemoryConfig{Capacity: capacity, LeaseTTL: ttl, Now: clock.Now, SweepInterval: -1})
		defer m.Close()

		type key struct{ account, id string }
		live := map[key]time.Time{} // expiry of every slot the model holds
		now := start
		expire := func() {
			for k, exp := range live {
				if !now.Before(exp) {
					delete(live, k)
				}
			}
		}
		held := func(account string) int {
			n := 0
			for k := range live {
				if k.account == account {
					n++
				}
			}
			return n
		}
		accounts := rapid.SampledFrom([]string{"a", "b"})
		ids := rapid.Custom(func(t *rapid.T) string { return fmt.Sprint("s", rapid.IntRange(0, 20).Draw(t, "id")) })

		t.Repeat(map[string]func(*rapid.T){
			"acquire": func(t *rapid.T) {
				k := key{accounts.Draw(t, "account"), ids.Draw(t, "id")}
				plan := limits.Plan{Name: "p", MaxConcurrent: rapid.IntRange(0, 24).Draw(t, "max")}
				d, err := m.Acquire(bg, limits.Request{Account: k.account, Plan: plan, SessionID: k.id})
				if err != nil {
					t.Fatalf("Acquire: %v", err)
				}
				expire()
				want := limits.NoLimit
				switch {
				case !live[k].IsZero():
				case held(k.account) >= plan.MaxConcurrent:
					want = limits.Concurrency
				case capacity > 0 && len(live) >= capacity:
					want = limits.SessionFull
				}
				if d.Refused != want {
					t.Fatalf("Acquire(%v, max %d) = %v, want %v", k, plan.MaxConcurrent, d.Refused, want)
				}
				if want == limits.NoLimit {
					live[k] = now.Add(ttl)
					if !d.Lease.Expires.Equal(live[k]) {
						t.Fatalf("Expires = %v, want %v", d.Lease.Expires, live[k])
					}
				}
			},
			"release": func(t *rapid.T) {
				k := key{accounts.Draw(t, "account"), ids.Draw(t, "id")}
				if err := m.Release(bg, limits.Lease{Account: k.account, SessionID: k.id}); err != nil {
					t.Fatalf("Release: %v", err)
				}
				delete(live, k)
			},
			"renew": func(t *rapid.T) {
				k := key{accounts.Draw(t, "account"), ids.Draw(t, "id")}
				_, err := m.Renew(bg, limits.Lease{Account: k.account, SessionID: k.id})
				expire()
				if _, ok := live[k]; ok != (err == nil) {
					t.Fatalf("Renew(%v) = %v, model holds it: %v", k, err, ok)
				}
				if ok := err == nil; ok {
					live[k] = now.Add(ttl)
				}
			},
			"advance": func(t *rapid.T) {
				// Steps that land exactly on expiries as well as around them.
				d := rapid.SampledFrom([]time.Duration{0, time.Nanosecond, time.Second, ttl / 2, ttl - time.Nanosecond, ttl, ttl + time.Second}).Draw(t, "advance")
				clock.Advance(d)
				now = now.Add(d)
			},
			"sweep": func(t *rapid.T) {
				m.Sweep()
				expire()
				if m.InUse() != len(live) {
					t.Fatalf("InUse after Sweep = %d, want %d", m.InUse(), len(live))
				}
			},
			"": func(t *rapid.T) {
				// Expired slots may wait to be reclaimed, never the reverse.
				if m.InUse() < len(live) {
					t.Fatalf("InUse = %d < %d live slots", m.InUse(), len(live))
				}
			},
		})
	})
}
