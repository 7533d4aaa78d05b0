package redislimiter_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

// ExampleNew builds a limiter. New checks the configuration and fills in its
// defaults; it does not contact Redis, so a node may start while Redis is
// down.
func ExampleNew() {
	client := redis.NewClient(&redis.Options{
		Addr: "127.0.0.1:6379",
		// Let context deadlines bound socket reads, so that a limiter call
		// returns by its deadline when Redis hangs.
		ContextTimeoutEnabled: true,
	})
	defer client.Close()

	lim, err := redislimiter.New(client, redislimiter.Config{Capacity: 1000})
	if err != nil {
		log.Fatal(err)
	}
	defer lim.Close()

	cfg := lim.Config()
	fmt.Println(cfg.Prefix, cfg.Capacity, cfg.LeaseTTL, cfg.Failure)
	// Output: streamsession 1000 30s fail-closed
}

// ExampleLimiter shows a session's life against the Redis that REDIS_ADDR
// names (the package's tests start one; unset, go-redis dials
// localhost:6379): a grant,
// the start of its trial minutes, a renewal (the holder renews every
// LeaseTTL/3 until the session is recorded and its lease kept), a refusal
// by the plan's concurrency, and the release that frees the slot.
func ExampleLimiter() {
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR"), ContextTimeoutEnabled: true})
	defer client.Close()
	lim, err := redislimiter.New(client, redislimiter.Config{Capacity: 1000, LeaseTTL: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer lim.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	plan := limits.Plan{Name: "solo", Trial: true, MaxConcurrent: 1, MonthlyMinutes: 300}
	d, err := lim.Acquire(ctx, limits.Request{Account: "acme", Plan: plan, SessionID: "s1"})
	switch {
	case errors.Is(err, limits.ErrUnavailable):
		log.Print("Redis unreachable: answer 503/400558 with Retry-After")
		return
	case err != nil:
		log.Fatal(err)
	case !d.Granted():
		log.Printf("refused: %v", d.Refused.Err()) // 10015, 10007 or 10014
		return
	}
	lease := d.Lease
	fmt.Println("granted", lease.SessionID)
	if err := lim.Started(ctx, lease); err != nil { // the session started: its trial minutes count
		log.Fatal(err)
	}

	renewed, err := lim.Renew(ctx, lease)
	switch {
	case errors.Is(err, limits.ErrLeaseExpired):
		log.Print("slot lost: close the session")
	case err != nil:
		log.Print("Redis unreachable: keep running, renew at the next beat")
	default:
		lease = renewed
		fmt.Println("renewed for", time.Until(lease.Expires).Round(time.Second))
	}

	d, err = lim.Acquire(ctx, limits.Request{Account: "acme", Plan: plan, SessionID: "s2"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("second session refused:", d.Refused, sserrors.CodeOf(d.Refused.Err()))

	if err := lim.Release(ctx, lease); err != nil {
		log.Fatal(err)
	}
	d, err = lim.Acquire(ctx, limits.Request{Account: "acme", Plan: plan, SessionID: "s2"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after the release:", d.Granted())
	_ = lim.Release(ctx, d.Lease)
	// Output:
	// granted s1
	// renewed for 30s
	// second session refused: concurrency 10007
	// after the release: true
}
