package redisrelay_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/server/redisrelay"
)

// Example gives two nodes a relay on the Redis that REDIS_ADDR names (the
// package's tests start one; unset, go-redis dials localhost:6379): a task
// published by one node reaches the other, which holds the session's
// realtime socket. A node's server takes its relay in server.Config.Relay.
func Example() {
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR"), ContextTimeoutEnabled: true})
	defer client.Close()
	a, err := redisrelay.New(client, redisrelay.Config{}) // the Prefix of the other Redis backends
	if err != nil {
		panic(err)
	}
	defer a.Close() // after the server's Shutdown
	b, err := redisrelay.New(client, redisrelay.Config{})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	_ = server.Config{Relay: a} // plus Manager, Accounts, Avatars, and the Redis Tokens and Secret

	heard := make(chan realtime.RelayMessage, 1)
	cancel, err := b.Subscribe(func(sessionID string, msg realtime.RelayMessage) { heard <- msg })
	if err != nil {
		panic(err)
	}
	defer cancel()
	task := realtime.RelayMessage{Kind: realtime.RelaySpeak, TaskID: "t1", Duration: 1500 * time.Millisecond}
	if err := a.Publish(context.Background(), "session-1", task); err != nil {
		panic(err)
	}
	msg := <-heard
	fmt.Println("b heard:", msg.Kind, msg.TaskID, msg.Duration)
	// Output: b heard: speak t1 1.5s
}

// A prefix is a hash tag: it cannot hold a brace.
func ExampleNew_invalid() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	_, err := redisrelay.New(client, redisrelay.Config{Prefix: "{svc}"})
	fmt.Println(sserrors.CodeOf(err))
	// Output: 400175
}
