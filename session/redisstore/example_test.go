package redisstore_test

import (
	"context"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/redisstore"
)

// Example wires two nodes on the Redis that REDIS_ADDR names (the package's
// tests start one; unset, go-redis dials localhost:6379): each a Manager on
// a Redis store. A session created through one node is served by the other.
func Example() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR"), ContextTimeoutEnabled: true})
	defer client.Close()
	lim := limits.NewMemory(limits.MemoryConfig{Capacity: 100}) // redislimiter on several hosts
	defer lim.Close()
	// node builds one node; stop closes its Manager, then its store.
	node := func() (mgr *session.Manager, stop func()) {
		store, err := redisstore.New(client, redisstore.Config{})
		if err != nil {
			panic(err)
		}
		mgr, err = session.NewManager(session.Config{
			Limiter: lim,
			Avatars: session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
			Store:   store,
		})
		if err != nil {
			panic(err)
		}
		return mgr, func() { _ = mgr.Close(ctx); _ = store.Close() }
	}
	a, stopA := node()
	defer stopA()
	b, stopB := node()
	defer stopB()

	s, err := a.Create(ctx, session.Account{Name: "acme", Plan: limits.PaidPlan}, session.CreateOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("created through a:", s.State)
	s, err = b.Start(ctx, "acme", s.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("started through b:", s.State)
	_, err = a.Stop(ctx, "acme", s.ID)
	fmt.Println("stopped through a:", err)
	// Output:
	// created through a: new
	// started through b: connecting
	// stopped through a: <nil>
}

// A Config that cannot work is refused before anything starts.
func ExampleNew_invalid() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	_, err := redisstore.New(client, redisstore.Config{Prefix: "{oops}"})
	fmt.Println(sserrors.CodeOf(err))
	// Output: 400175
}
