package bench

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	looplab "github.com/looplab/fsm"
	"github.com/qmuntal/stateless"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"
)

// benchAvatars is the avatar catalog of the benchmarks: one public default.
var benchAvatars = session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}

// benchRetention is how long a closed session stays addressable in the
// lifecycle benchmarks. The default (10 minutes) would keep every session a
// benchmark ever closed in memory, so that the heap, not the lifecycle, would
// be measured; a short window makes the manager's timer loop forget them as
// it does in production, and that work is part of the measurement.
const benchRetention = time.Millisecond

// newManager returns a Manager as the performance goals measure it: the in-memory limiter
// (limits.NewMemory), the default store, ids, timers and one subscriber. The
// manager, its subscriber and the limiter are closed when b ends.
func newManager(b *testing.B, retention time.Duration) *session.Manager {
	b.Helper()
	lim := limits.NewMemory(limits.MemoryConfig{})
	m, err := session.NewManager(session.Config{Limiter: lim, Avatars: benchAvatars, Retention: retention})
	if err != nil {
		b.Fatal(err)
	}
	var seen atomic.Int64
	cancel := m.Subscribe(func(session.Event) { seen.Add(1) })
	b.Cleanup(func() {
		cancel()
		if err := m.Close(context.Background()); err != nil {
			b.Error(err)
		}
		_ = lim.Close()
	})
	return m
}

// lifecycle runs one session of acct through its whole life on m.
func lifecycle(ctx context.Context, m *session.Manager, acct session.Account) error {
	s, err := m.Create(ctx, acct, session.CreateOptions{})
	if err != nil {
		return err
	}
	if _, err := m.Start(ctx, acct.Name, s.ID); err != nil {
		return err
	}
	if _, err := m.Join(ctx, acct.Name, s.ID); err != nil {
		return err
	}
	info, err := m.Stop(ctx, acct.Name, s.ID)
	if err != nil {
		return err
	}
	if info.State != fsm.Closed {
		return &stateError{got: info.State}
	}
	return nil
}

type stateError struct{ got fsm.State }

func (e *stateError) Error() string {
	return "Stop left the session " + e.got.String() + ", want closed"
}

// statelessMachine configures a fresh qmuntal/stateless machine for the
// same five states, as a user picking stateless would.
func statelessMachine() *stateless.StateMachine {
	sm := stateless.NewStateMachine("new")
	sm.Configure("new").Permit("start", "connecting").Permit("close", "closing")
	sm.Configure("connecting").Permit("join", "connected").Permit("close", "closing")
	sm.Configure("connected").Permit("close", "closing")
	sm.Configure("closing").Permit("closed", "closed")
	sm.Configure("closed")
	return sm
}

var (
	sinkLooplab   *looplab.FSM
	sinkStateless *stateless.StateMachine
)

// BenchmarkLifecycle is one whole session life per op: create → start →
// join → stop → closed. streamsession goes through session.Manager (limiter,
// id from crypto/rand, registry, timers, one subscriber); looplab and
// stateless build a fresh machine and fire the four events. Goal:
// streamsession ≤ 1.5× looplab, ≤ 35 allocs/op.
func BenchmarkLifecycle(b *testing.B) {
	b.Run("streamsession", func(b *testing.B) {
		m := newManager(b, benchRetention)
		acct := session.Account{Name: "acme", Plan: limits.PaidPlan}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := lifecycle(ctx, m, acct); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("looplab", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			f := looplab.NewFSM("new", lifecycleEvents, nil)
			for _, ev := range [...]string{"start", "join", "close", "closed"} {
				if err := f.Event(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
			if f.Current() != "closed" {
				b.Fatalf("looplab ended in %q, want closed", f.Current())
			}
			sinkLooplab = f
		}
	})
	b.Run("stateless", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			sm := statelessMachine()
			for _, ev := range [...]string{"start", "join", "close", "closed"} {
				if err := sm.FireCtx(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
			if sm.MustState() != "closed" {
				b.Fatalf("stateless ended in %v, want closed", sm.MustState())
			}
			sinkStateless = sm
		}
	})
}

// BenchmarkLifecycleParallel runs whole lifecycles from every P, each
// goroutine on an account of its own, through one Manager. Run it with
// -cpu 1,2. Goal: ops/s at -cpu 2 ≥ 1.6× ops/s at -cpu 1.
func BenchmarkLifecycleParallel(b *testing.B) {
	b.Run("streamsession", func(b *testing.B) {
		m := newManager(b, benchRetention)
		ctx := context.Background()
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			acct := session.Account{Name: "acct-" + strconv.FormatInt(next.Add(1), 10), Plan: limits.PaidPlan}
			for pb.Next() {
				if err := lifecycle(ctx, m, acct); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
