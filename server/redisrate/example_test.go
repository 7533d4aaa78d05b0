package redisrate_test

import (
	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redisrate"
)

// Example shares the request budgets of a node's server with every node on
// the same Redis: 5 requests a second per account, 10 at once. (Not run: it
// needs a Redis.)
func Example() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	rates, err := redisrate.New(client, redisrate.Config{})
	if err != nil {
		panic(err)
	}
	cfg := server.Config{
		RateLimiter: rates,
		RateLimit:   func(string) server.RateLimit { return server.RateLimit{PerSecond: 5, Burst: 10} },
	} // plus Manager, Accounts, Avatars
	_ = cfg
}
