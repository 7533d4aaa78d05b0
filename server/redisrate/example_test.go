package redisrate_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redisrate"
	"github.com/streamsession/streamsession/session"
)

// Example shares the request budgets of a node's server with every node on
// the Redis that REDIS_ADDR names (the package's tests start one; unset,
// go-redis dials localhost:6379): 1 request a second per account, 3 at
// once. Two nodes' limiters draw from one budget.
func Example() {
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR"), ContextTimeoutEnabled: true})
	defer client.Close()
	rates, err := redisrate.New(client, redisrate.Config{})
	if err != nil {
		panic(err)
	}
	limit := server.RateLimit{PerSecond: 1, Burst: 3}
	_ = server.Config{
		RateLimiter: rates,
		RateLimit:   func(session.Account) server.RateLimit { return limit },
	} // plus Manager, Accounts, Avatars

	other, err := redisrate.New(client, redisrate.Config{}) // another node's
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for i, node := range []*redisrate.Limiter{rates, other, rates, other} {
		d, err := node.Allow(ctx, "acme", limit)
		if err != nil {
			panic(err) // Redis unreachable: the server answers 503/400558
		}
		fmt.Printf("request %d: allowed %v, retry after %v\n", i+1, d.Allowed, d.RetryAfter.Round(time.Second))
	}
	// Output:
	// request 1: allowed true, retry after 0s
	// request 2: allowed true, retry after 0s
	// request 3: allowed true, retry after 0s
	// request 4: allowed false, retry after 1s
}
