package session_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"
)

// exampleLimiter grants every acquire: the examples do not depend on the
// in-memory limiter's configuration.
type exampleLimiter struct{}

func (exampleLimiter) Acquire(_ context.Context, r limits.Request) (limits.Decision, error) {
	return limits.Decision{Lease: limits.Lease{Account: r.Account, SessionID: r.SessionID}}, nil
}
func (exampleLimiter) Started(context.Context, limits.Lease) error { return nil }
func (exampleLimiter) Keep(context.Context, limits.Lease) error    { return nil }
func (exampleLimiter) Renew(_ context.Context, l limits.Lease) (limits.Lease, error) {
	return l, nil
}
func (exampleLimiter) Release(context.Context, limits.Lease) error { return nil }
func (exampleLimiter) Close() error                                { return nil }

// A session's whole life through the Manager: create, start, the client's
// socket joins, a task, a stop, and the events a subscriber saw.
func ExampleManager() {
	ctx := context.Background()
	m, err := session.NewManager(session.Config{
		Limiter: exampleLimiter{},
		Avatars: session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
	})
	if err != nil {
		panic(err)
	}

	var (
		mu     sync.Mutex
		events []session.Event
	)
	cancel := m.Subscribe(func(e session.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	defer cancel()

	acct := session.Account{Name: "acme", Plan: limits.PaidPlan}
	s, _ := m.Create(ctx, acct, session.CreateOptions{})
	fmt.Println("created:", s.State, "avatar", s.AvatarID, "paid", s.Paid, "idle timeout", s.IdleTimeout)

	_, err = m.Command(ctx, "acme", s.ID, fsm.CmdTask)
	fmt.Println("task before the socket joined:", err)

	s, _ = m.Start(ctx, "acme", s.ID)
	fmt.Println("started:", s.State)
	s, _ = m.Join(ctx, "acme", s.ID)
	fmt.Println("joined:", s.State)
	_, err = m.Command(ctx, "acme", s.ID, fsm.CmdTask)
	fmt.Println("task:", err)
	s, _ = m.Stop(ctx, "acme", s.ID)
	fmt.Println("stopped:", s.State, "reason", s.Reason)
	_, err = m.Stop(ctx, "acme", s.ID)
	fmt.Println("stop again:", err)
	_, err = m.Get(ctx, "someone-else", s.ID)
	fmt.Println("another account:", err)

	// Close delivers every pending event before it returns.
	if err := m.Close(ctx); err != nil {
		panic(err)
	}
	for _, e := range events {
		fmt.Printf("event %d: %s -> %s (%s)\n", e.Epoch, e.From, e.To, e.Reason)
	}
	// Output:
	// created: new avatar Wayne_20240711 paid true idle timeout 2m0s
	// task before the socket joined: streamsession: Session state wrong: new (code 10001)
	// started: connecting
	// joined: connected
	// task: <nil>
	// stopped: closed reason stop
	// stop again: streamsession: Session state wrong: closed (code 10005)
	// another account: streamsession: Session not found (code 10006)
	// event 1: unknown -> new (none)
	// event 2: new -> connecting (none)
	// event 3: connecting -> connected (none)
	// event 4: connected -> closing (stop)
	// event 5: closing -> closed (stop)
}

// A client keeps a Guard per remote session and refuses a command the
// server would refuse, before any network call.
func ExampleGuard() {
	var g session.Guard
	g.Observe(fsm.New) // from the streaming.new answer

	fmt.Println("task:", g.Check(fsm.CmdTask))
	fmt.Println("start:", g.Check(fsm.CmdStart))

	g.Observe(fsm.Connected)  // session.state_updated on the socket
	g.Observe(fsm.Connecting) // a late, older event: ignored
	fmt.Println("state:", g.State())
	fmt.Println("task:", g.Check(fsm.CmdTask))
	// Output:
	// task: streamsession: Session state wrong: new (code 10001)
	// start: <nil>
	// state: connected
	// task: <nil>
}
