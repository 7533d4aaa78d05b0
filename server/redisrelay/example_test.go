package redisrelay_test

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redisrelay"
)

// Example configures a node's server for a cluster: tasks and interrupts
// reach the session's realtime socket on whichever node holds it. (Not
// run: it needs a Redis.)
func Example() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	relay, err := redisrelay.New(client, redisrelay.Config{}) // the Prefix of the other Redis backends
	if err != nil {
		panic(err)
	}
	// Close the relay after the server's Shutdown.
	defer relay.Close()
	// Plus Manager, Accounts, Avatars, and the Redis Tokens and Secret.
	cfg := server.Config{Relay: relay}
	_ = cfg
}

// A prefix is a hash tag: it cannot hold a brace.
func ExampleNew_invalid() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	_, err := redisrelay.New(client, redisrelay.Config{Prefix: "{svc}"})
	fmt.Println(sserrors.CodeOf(err))
	// Output: 400175
}
