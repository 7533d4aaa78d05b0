package redisidem_test

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redisidem"
)

// Example shares the Idempotency-Keys of streaming.new between the nodes
// of a service. (Not run: it needs a Redis.)
func Example() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	store, err := redisidem.New(client, redisidem.Config{TTL: 24 * time.Hour})
	if err != nil {
		panic(err)
	}
	cfg := server.Config{Idempotency: server.IdempotencyConfig{Store: store}} // plus Manager, Accounts, Avatars
	_ = cfg
}

// A store needs a client.
func ExampleNew_invalid() {
	_, err := redisidem.New(nil, redisidem.Config{})
	fmt.Println(sserrors.CodeOf(err))
	// Output: 400175
}
