package redisidem_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redisidem"
	"github.com/streamsession/streamsession/server/redistokens"
)

// Example shares the Idempotency-Keys of streaming.new between the nodes
// of a service. (Not run: it needs a Redis.)
func Example() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	// Every node of the service uses the same secret (here from
	// redistokens.SharedSecret): it seals the stored answers, which hold
	// the sessions' access tokens.
	secret, err := redistokens.SharedSecret(context.Background(), client, redistokens.DefaultPrefix)
	if err != nil {
		panic(err)
	}
	store, err := redisidem.New(client, redisidem.Config{Secret: secret, TTL: 24 * time.Hour})
	if err != nil {
		panic(err)
	}
	cfg := server.Config{Idempotency: server.IdempotencyConfig{Store: store}} // plus Manager, Accounts, Avatars
	_ = cfg
}

// A store needs a client and a secret of 16 bytes or more.
func ExampleNew_invalid() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	_, err := redisidem.New(nil, redisidem.Config{Secret: []byte("0123456789abcdef")})
	fmt.Println(sserrors.CodeOf(err))
	_, err = redisidem.New(client, redisidem.Config{Secret: []byte("short")})
	fmt.Println(sserrors.CodeOf(err))
	// Output:
	// 400175
	// 400175
}
