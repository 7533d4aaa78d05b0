package redisidem_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redisidem"
	"github.com/streamsession/streamsession/server/redistokens"
)

// Example shares the Idempotency-Keys of streaming.new between two nodes
// of a service on the Redis that REDIS_ADDR names (the package's tests
// start one; unset, go-redis dials localhost:6379): the answer one node
// stored for a key is replayed by the other.
func Example() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR"), ContextTimeoutEnabled: true})
	defer client.Close()
	node := func() *redisidem.Store {
		// Every node of the service uses the same secret (here from
		// redistokens.SharedSecret): it seals the stored answers, which
		// hold the sessions' access tokens.
		secret, err := redistokens.SharedSecret(ctx, client, redistokens.DefaultPrefix)
		if err != nil {
			panic(err)
		}
		store, err := redisidem.New(client, redisidem.Config{Secret: secret, TTL: 24 * time.Hour})
		if err != nil {
			panic(err)
		}
		_ = server.Config{Idempotency: server.IdempotencyConfig{Store: store}} // plus Manager, Accounts, Avatars
		return store
	}
	a, b := node(), node()

	body := []byte(`{"quality":"low"}`)
	key := server.IdempotencyKey{Account: "acme", Key: "retry-1", BodyHash: sha256.Sum256(body)}
	r, err := a.Begin(ctx, key)
	if err != nil {
		panic(err)
	}
	fmt.Println("first call runs:", r.Replay == nil)
	answer := &server.StoredAnswer{Status: 200, ContentType: "application/json", Body: []byte(`{"code":100}`)}
	if err := a.Finish(ctx, key, r.Owner, answer); err != nil {
		panic(err)
	}
	r, err = b.Begin(ctx, key)
	if err != nil {
		panic(err)
	}
	fmt.Printf("the retry through b replays: %d %s\n", r.Replay.Status, r.Replay.Body)
	// Output:
	// first call runs: true
	// the retry through b replays: 200 {"code":100}
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
