package client_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamsession/streamsession/client"
	sserrors "github.com/streamsession/streamsession/errors"
)

// Example runs a whole session: new, start, the realtime socket, a task,
// stop.
func Example() {
	b := startBackend() // a streamsession server; use the server's URL
	defer b.close()
	ctx := context.Background()

	c, err := client.New(b.http.URL, client.WithAPIKey("key-acme"))
	if err != nil {
		panic(err)
	}
	s, err := c.NewSession(ctx, client.NewSessionRequest{Quality: "low"})
	if err != nil {
		panic(err)
	}
	fmt.Println("created:", s.State())
	if err := s.Start(ctx); err != nil {
		panic(err)
	}
	events, err := s.Connect(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("socket:", (<-events).(client.StateEvent).State)
	res, err := s.Task(ctx, "Hello")
	if err != nil {
		panic(err)
	}
	fmt.Println("speaking:", (<-events).(client.StartTalkingEvent).TaskID == res.TaskID)
	if err := s.Stop(ctx); err != nil {
		panic(err)
	}
	for ev := range events {
		if st, ok := ev.(client.StateEvent); ok {
			fmt.Println("socket:", st.State)
		}
	}
	// Output:
	// created: new
	// socket: connected
	// speaking: true
	// socket: closing
	// socket: closed
}

// The guard refuses a command the session's state does not accept, with
// the server's own error, before any request.
func ExampleSession_Task_guard() {
	b := startBackend()
	defer b.close()
	ctx := context.Background()
	c, _ := client.New(b.http.URL, client.WithAPIKey("key-acme"))
	s, _ := c.NewSession(ctx, client.NewSessionRequest{})
	defer s.Stop(ctx)

	_, err := s.Task(ctx, "too early")
	var e *sserrors.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code, e.Message)
	}
	// Output: 400 10001 Session state wrong: new
}

// Every refusal is an *errors.Error with its HTTP status; errors.Is
// matches it against the catalog.
func ExampleClient_NewSession_refused() {
	b := startBackend()
	defer b.close()
	ctx := context.Background()
	c, _ := client.New(b.http.URL, client.WithAPIKey("key-limited")) // one session at a time
	first, _ := c.NewSession(ctx, client.NewSessionRequest{})
	defer first.Stop(ctx)

	_, err := c.NewSession(ctx, client.NewSessionRequest{})
	fmt.Println(errors.Is(err, sserrors.ErrConcurrentLimitReached), sserrors.StatusOf(err))
	// Output: true 429
}

// New refuses a client without credentials.
func ExampleNew_invalid() {
	_, err := client.New("http://127.0.0.1:8080")
	fmt.Println(sserrors.CodeOf(err))
	// Output: 400175
}
