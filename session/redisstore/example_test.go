package redisstore_test

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/redisstore"
)

// Example wires one node: a Manager on a Redis store. Every node of the
// service does the same with the same Redis; a session created through one
// node is then served by all of them. (Not run: it needs a Redis.)
func Example() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	store, err := redisstore.New(client, redisstore.Config{})
	if err != nil {
		panic(err)
	}
	defer store.Close() // after the Manager
	mgr, err := session.NewManager(session.Config{
		Limiter: limits.NewMemory(limits.MemoryConfig{Capacity: 100}), // redislimiter in a real cluster
		Avatars: session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
		Store:   store,
	})
	if err != nil {
		panic(err)
	}
	defer mgr.Close(ctx)
	s, err := mgr.Create(ctx, session.Account{Name: "acme", Plan: limits.PaidPlan}, session.CreateOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println(s.State)
}

// A Config that cannot work is refused before anything starts.
func ExampleNew_invalid() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	_, err := redisstore.New(client, redisstore.Config{Prefix: "{oops}"})
	fmt.Println(sserrors.CodeOf(err))
	// Output: 400175
}
