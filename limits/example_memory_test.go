package limits_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/limitertest"
)

// ExampleMemory walks a trial session across a month boundary on the
// in-memory limiter with a fake clock.
func ExampleMemory() {
	clock := limitertest.NewClock(time.Date(2030, time.January, 31, 23, 50, 0, 0, time.UTC))
	mem := limits.NewMemory(limits.MemoryConfig{Capacity: 100, LeaseTTL: time.Minute, Now: clock.Now})
	defer mem.Close()
	ctx := context.Background()
	plan := limits.Plan{Name: "trial", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 30}
	acquire := func(id string) limits.Decision {
		d, err := mem.Acquire(ctx, limits.Request{Account: "bob", Plan: plan, SessionID: id})
		if err != nil {
			log.Fatal(err)
		}
		return d
	}
	// run lets the session run for d, renewing its lease every 20 seconds,
	// well inside its one-minute TTL.
	run := func(lease limits.Lease, d time.Duration) {
		for range d / (20 * time.Second) {
			clock.Advance(20 * time.Second)
			if _, err := mem.Renew(ctx, lease); err != nil {
				log.Fatal(err)
			}
		}
	}

	d := acquire("s1")
	fmt.Println("s1:", d.Refused, "expires", d.Lease.Expires.Format(time.TimeOnly))
	_ = mem.Started(ctx, d.Lease)

	run(d.Lease, 30*time.Minute) // 10 minutes in January, 20 in February
	probe := acquire("s2")
	fmt.Println("s2 at", clock.Now().Format("Jan 2 15:04:05")+":", probe.Refused)
	_ = mem.Release(ctx, probe.Lease) // never started: counts nothing

	run(d.Lease, 10*time.Minute) // 30 minutes in February
	fmt.Println("s3 at", clock.Now().Format("Jan 2 15:04:05")+":", acquire("s3").Refused)

	// A holder that stops renewing loses its slot when the lease expires.
	clock.Advance(2 * time.Minute)
	_, err := mem.Renew(ctx, d.Lease)
	fmt.Println("renew after expiry:", err)
	fmt.Println("release after expiry:", mem.Release(ctx, d.Lease), "slots held:", mem.InUse())
	// Output:
	// s1: none expires 23:51:00
	// s2 at Feb 1 00:20:00: none
	// s3 at Feb 1 00:30:00: trial_quota
	// renew after expiry: limits: lease expired or released
	// release after expiry: <nil> slots held: 0
}
