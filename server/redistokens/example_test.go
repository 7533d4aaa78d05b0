package redistokens_test

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redistokens"
)

// Example configures a node's server for a cluster: the secret agreed
// through Redis, and bearer tokens in Redis, sealed under it. (Not run: it
// needs a Redis.)
func Example() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	secret, err := redistokens.SharedSecret(ctx, client, "")
	if err != nil {
		panic(err)
	}
	tokens, err := redistokens.New(client, redistokens.Config{Secret: secret})
	if err != nil {
		panic(err)
	}
	cfg := server.Config{Tokens: tokens, Secret: secret} // plus Manager, Accounts, Avatars
	_ = cfg
}

// A token store needs a client.
func ExampleNew_invalid() {
	_, err := redistokens.New(nil, redistokens.Config{})
	fmt.Println(sserrors.CodeOf(err))
	// Output: 400175
}
