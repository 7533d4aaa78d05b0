package redislimiter_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

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

// ExampleLimiter shows a session's whole life against a running Redis: a
// grant, the start of its trial minutes, a heartbeat at a third of the lease
// TTL, and the release. (It needs a redis-server, so it has no Output to
// check.)
func ExampleLimiter() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	lim, err := redislimiter.New(client, redislimiter.Config{Capacity: 1000, LeaseTTL: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer lim.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	d, err := lim.Acquire(ctx, limits.Request{Account: "acme", Plan: limits.TrialPlan, SessionID: "3f2a…"})
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
	_ = lim.Started(ctx, lease) // the session started: its trial minutes count

	// The holder renews every LeaseTTL/3 until the session closes.
	heartbeat := time.NewTicker(lim.Config().LeaseTTL / 3)
	defer heartbeat.Stop()
	<-heartbeat.C
	renewed, err := lim.Renew(context.Background(), lease)
	switch {
	case errors.Is(err, limits.ErrLeaseExpired):
		log.Print("slot lost: close the session")
	case err != nil:
		log.Print("Redis unreachable: keep running, renew at the next beat")
	default:
		lease = renewed
	}
	_ = lim.Release(context.Background(), lease)
}
