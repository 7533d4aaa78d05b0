package sessiontest_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/sessiontest"
)

var (
	avatars = session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	acme    = session.Account{Name: "acme", Plan: limits.PaidPlan}
	t0      = time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)
)

// Bill a session when it closes: a subscriber charges the time from start
// to closed. The Tap waits until the subscriber has seen every event, so
// the test reads the bill without sleeping.
func Example_billOnClose() {
	ctx := context.Background()
	clock := sessiontest.NewClock(t0)
	tap := sessiontest.NewTap()
	lim := limits.NewMemory(limits.MemoryConfig{})
	defer lim.Close()
	m, err := session.NewManager(session.Config{
		Limiter: lim, Avatars: avatars, Clock: clock,
		Hooks: session.Hooks{OnTransition: tap.OnTransition},
	})
	if err != nil {
		panic(err)
	}
	defer m.Close(ctx)

	// The code under test: bill the account when its session closes.
	started := map[string]time.Time{}
	bills := map[string]time.Duration{}
	cancel := tap.Subscribe(m, func(e session.Event) {
		switch e.To {
		case fsm.Connecting:
			started[e.SessionID] = e.At
		case fsm.Closed:
			bills[e.Account] += e.At.Sub(started[e.SessionID])
		}
	})
	defer cancel()

	s, _ := m.Create(ctx, acme, session.CreateOptions{})
	m.Start(ctx, "acme", s.ID)
	m.Join(ctx, "acme", s.ID)
	clock.Advance(90 * time.Second)
	m.Stop(ctx, "acme", s.ID)

	if err := tap.Settle(ctx); err != nil {
		panic(err)
	}
	fmt.Println("acme is billed", bills["acme"])
	// Output:
	// acme is billed 1m30s
}

// My hook sees connecting → connected → closing → closed, in order: the
// Recorder is the Manager's OnTransition hook, called synchronously, so the
// states are there as soon as Stop returns.
func Example_hookOrder() {
	ctx := context.Background()
	rec := sessiontest.NewRecorder()
	lim := limits.NewMemory(limits.MemoryConfig{})
	defer lim.Close()
	m, err := session.NewManager(session.Config{
		Limiter: lim, Avatars: avatars,
		Hooks: session.Hooks{OnTransition: rec.Record},
	})
	if err != nil {
		panic(err)
	}
	defer m.Close(ctx)

	s, _ := m.Create(ctx, acme, session.CreateOptions{})
	m.Start(ctx, "acme", s.ID)
	m.Join(ctx, "acme", s.ID)
	m.Stop(ctx, "acme", s.ID)

	fmt.Println(sessiontest.FormatStates(rec.States(s.ID)))
	last := rec.Events()[len(rec.Events())-1]
	fmt.Println("closed because of", last.Reason)
	// Output:
	// new → connecting → connected → closing → closed
	// closed because of stop
}

// An idle timeout closes a connected session with reason idle. The fake
// Clock moves two minutes at once; WaitState waits for the Manager's timer
// goroutine to act on it.
func Example_idleTimeout() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clock := sessiontest.NewClock(t0)
	rec := sessiontest.NewRecorder()
	lim := limits.NewMemory(limits.MemoryConfig{})
	defer lim.Close()
	m, err := session.NewManager(session.Config{
		Limiter: lim, Avatars: avatars, Clock: clock,
		Hooks: session.Hooks{OnTransition: rec.Record},
	})
	if err != nil {
		panic(err)
	}
	defer m.Close(ctx)

	s, _ := m.Create(ctx, acme, session.CreateOptions{IdleTimeout: 2 * time.Minute})
	m.Start(ctx, "acme", s.ID)
	m.Join(ctx, "acme", s.ID)
	clock.Advance(2 * time.Minute)

	e, err := rec.WaitState(ctx, s.ID, fsm.Closed)
	if err != nil {
		panic(err)
	}
	fmt.Println("closed because of", e.Reason, "after", e.At.Sub(t0))
	// Output:
	// closed because of idle after 2m0s
}

// TestIdleTimeoutInBubble is Example_idleTimeout in a testing/synctest
// bubble, where the Manager's default clock is already fake: no Clock, and
// synctest.Wait instead of WaitState. (A runnable Example cannot make a
// bubble: synctest.Test needs a *testing.T.)
func TestIdleTimeoutInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rec := sessiontest.NewRecorder()
		lim := limits.NewMemory(limits.MemoryConfig{})
		defer lim.Close()
		m, err := session.NewManager(session.Config{
			Limiter: lim, Avatars: avatars,
			Hooks: session.Hooks{OnTransition: rec.Record},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close(ctx)

		s, _ := m.Create(ctx, acme, session.CreateOptions{IdleTimeout: 2 * time.Minute})
		m.Start(ctx, "acme", s.ID)
		m.Join(ctx, "acme", s.ID)
		joined := time.Now()
		time.Sleep(2 * time.Minute) // bubble time: returns at once
		synctest.Wait()

		rec.AssertStates(t, s.ID, fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed)
		events := rec.Events()
		last := events[len(events)-1]
		if last.Reason != session.ReasonIdle || last.At.Sub(joined) != 2*time.Minute {
			t.Errorf("last event = %s → %s (%s) %v after joining, want closed (idle) 2m0s after", last.From, last.To, last.Reason, last.At.Sub(joined))
		}
	})
}
