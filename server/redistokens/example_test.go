package redistokens_test

import (
	"context"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redistokens"
	"github.com/streamsession/streamsession/session"
)

// Example configures two nodes' servers for a cluster on the Redis that
// REDIS_ADDR names (the package's tests start one; unset, go-redis dials
// localhost:6379): the secret agreed through Redis, and bearer tokens in
// Redis, sealed under it. A token minted by one node is known to the other.
func Example() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR"), ContextTimeoutEnabled: true})
	defer client.Close()
	node := func() *redistokens.Store {
		secret, err := redistokens.SharedSecret(ctx, client, "")
		if err != nil {
			panic(err)
		}
		tokens, err := redistokens.New(client, redistokens.Config{Secret: secret})
		if err != nil {
			panic(err)
		}
		_ = server.Config{Tokens: tokens, Secret: secret} // plus Manager, Accounts, Avatars
		return tokens
	}
	a, b := node(), node()
	token, err := a.Mint(ctx, session.Account{Name: "acme", Plan: limits.PaidPlan})
	if err != nil {
		panic(err)
	}
	got, err := b.Get(ctx, token)
	if err != nil {
		panic(err)
	}
	fmt.Printf("b knows a's token: account %s, spent on %q\n", got.Account.Name, got.SessionID)
	_, err = b.Get(ctx, "not-a-token")
	fmt.Println("an unknown token:", sserrors.CodeOf(err))
	// Output:
	// b knows a's token: account acme, spent on ""
	// an unknown token: 400112
}

// A token store needs a client.
func ExampleNew_invalid() {
	_, err := redistokens.New(nil, redistokens.Config{})
	fmt.Println(sserrors.CodeOf(err))
	// Output: 400175
}
