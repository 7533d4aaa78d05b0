package session

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	looplab "github.com/looplab/fsm"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
)

// storeVariants are the two kinds of MemoryStore: transitions from the
// table (the default), or one fsm.Machine per session.
var storeVariants = []struct {
	name string
	cfg  MemoryStoreConfig
}{
	{"streamsession", MemoryStoreConfig{}},
	{"streamsession-machine", MemoryStoreConfig{MachinePerSession: true}},
}

// benchManager returns a Manager on the in-memory limiter with one
// subscriber, as the performance goals measure it. Closed sessions are forgotten after
// Retention: a short one keeps the benchmark's heap flat.
func benchManager(b *testing.B, retention time.Duration, store MemoryStoreConfig) (*Manager, func()) {
	b.Helper()
	lim := limits.NewMemory(limits.MemoryConfig{})
	m, err := NewManager(Config{Limiter: lim, Avatars: testAvatars, Retention: retention, Store: NewMemoryStore(store)})
	if err != nil {
		b.Fatal(err)
	}
	cancel := m.Subscribe(func(Event) {})
	return m, func() {
		cancel()
		if err := m.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		_ = lim.Close()
	}
}

// BenchmarkLifecycle: create → start → join → stop (→ closed) through the
// Manager, against the same five states on a bare looplab machine, in the
// same run.
func BenchmarkLifecycle(b *testing.B) {
	for _, v := range storeVariants {
		b.Run(v.name, func(b *testing.B) { benchLifecycle(b, v.cfg) })
	}
	b.Run("looplab", func(b *testing.B) {
		events := looplab.Events{
			{Name: "start", Src: []string{"new"}, Dst: "connecting"},
			{Name: "join", Src: []string{"connecting"}, Dst: "connected"},
			{Name: "close", Src: []string{"new", "connecting", "connected"}, Dst: "closing"},
			{Name: "closed", Src: []string{"closing"}, Dst: "closed"},
		}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			f := looplab.NewFSM("new", events, nil)
			for _, ev := range []string{"start", "join", "close", "closed"} {
				if err := f.Event(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

func benchLifecycle(b *testing.B, store MemoryStoreConfig) {
	m, done := benchManager(b, time.Millisecond, store)
	defer done()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := m.Create(ctx, acme, CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Start(ctx, "acme", s.ID); err != nil {
			b.Fatal(err)
		}
		if _, err := m.Join(ctx, "acme", s.ID); err != nil {
			b.Fatal(err)
		}
		if _, err := m.Stop(ctx, "acme", s.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLifecycleParallel runs lifecycles on distinct accounts from
// every P (run with -cpu 1,2).
func BenchmarkLifecycleParallel(b *testing.B) {
	for _, v := range storeVariants {
		b.Run(v.name, func(b *testing.B) {
			m, done := benchManager(b, time.Millisecond, v.cfg)
			defer done()
			ctx := context.Background()
			var next int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				acct := Account{Name: "acct" + strconv.FormatInt(atomicAdd(&next), 10), Plan: paidPlan}
				for pb.Next() {
					s, err := m.Create(ctx, acct, CreateOptions{})
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = m.Start(ctx, acct.Name, s.ID)
					_, _ = m.Join(ctx, acct.Name, s.ID)
					_, _ = m.Stop(ctx, acct.Name, s.ID)
				}
			})
		})
	}
}

// BenchmarkGuardCheck: the client guard's check, against looplab's Can on a
// machine in the same state.
func BenchmarkGuardCheck(b *testing.B) {
	b.Run("streamsession", func(b *testing.B) {
		var g Guard
		g.Observe(fsm.Connected)
		b.ReportAllocs()
		for b.Loop() {
			if g.Check(fsm.CmdTask) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("looplab-can", func(b *testing.B) {
		f := looplab.NewFSM("connected", looplab.Events{
			{Name: "close", Src: []string{"new", "connecting", "connected"}, Dst: "closing"},
		}, nil)
		b.ReportAllocs()
		for b.Loop() {
			if !f.Can("close") {
				b.Fatal("refused")
			}
		}
	})
}

// BenchmarkIllegalCommand: a task on a session still new, through the
// Manager (the answer is 10001).
func BenchmarkIllegalCommand(b *testing.B) {
	m, done := benchManager(b, 0, MemoryStoreConfig{})
	defer done()
	ctx := context.Background()
	s, err := m.Create(ctx, acme, CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Command(ctx, "acme", s.ID, fsm.CmdTask); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkOpenSessions opens 100,000 sessions (connected, on 1,000
// accounts) and reports the heap bytes per open session, limiter included,
// and the goroutines alive while they are open.
func BenchmarkOpenSessions(b *testing.B) {
	for _, v := range storeVariants {
		b.Run(v.name, func(b *testing.B) { benchOpenSessions(b, v.cfg) })
	}
}

func benchOpenSessions(b *testing.B, store MemoryStoreConfig) {
	const n = 100_000
	ctx := context.Background()
	for b.Loop() {
		lim := limits.NewMemory(limits.MemoryConfig{})
		m, err := NewManager(Config{Limiter: lim, Avatars: testAvatars, Store: NewMemoryStore(store)})
		if err != nil {
			b.Fatal(err)
		}
		cancel := m.Subscribe(func(Event) {})
		accts := make([]Account, 1000)
		for i := range accts {
			accts[i] = Account{Name: "account-" + strconv.Itoa(i), Plan: paidPlan}
		}
		before := heapInUse()
		for i := range n {
			a := accts[i%len(accts)]
			s, err := m.Create(ctx, a, CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			_, _ = m.Start(ctx, a.Name, s.ID)
			_, _ = m.Join(ctx, a.Name, s.ID)
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/n, "B/session")
		b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
		cancel()
		_ = m.Close(ctx)
		_ = lim.Close()
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
