package bench

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"
)

// openSessions is how many sessions BenchmarkOpenSessions holds open.
const openSessions = 100_000

// BenchmarkOpenSessions opens 100,000 sessions (created, started and
// joined: connected, on 1,000 accounts of the paid plan, 100 each) on one
// Manager and reports the heap bytes each open session costs, limiter
// included (B/session: HeapAlloc after a GC, after minus before, divided by
// 100,000), and the goroutines alive while they are all open (goroutines,
// the test binary's own included). ns/op is the time to open them all. Run
// it with -benchtime 1x: every op is 100,000 sessions. Goal: ≤ 1.5 KiB per
// session, < 50 goroutines.
func BenchmarkOpenSessions(b *testing.B) {
	b.Run("streamsession", func(b *testing.B) {
		ctx := context.Background()
		accts := make([]session.Account, openSessions/limits.PaidPlan.MaxConcurrent)
		for i := range accts {
			accts[i] = session.Account{Name: "account-" + strconv.Itoa(i), Plan: limits.PaidPlan}
		}
		var perSession, goroutines float64
		for b.Loop() {
			b.StopTimer()
			lim := limits.NewMemory(limits.MemoryConfig{})
			m, err := session.NewManager(session.Config{Limiter: lim, Avatars: benchAvatars})
			if err != nil {
				b.Fatal(err)
			}
			cancel := m.Subscribe(func(session.Event) {})
			before := heapAlloc()
			b.StartTimer()
			for i := range openSessions {
				a := accts[i%len(accts)]
				s, err := m.Create(ctx, a, session.CreateOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.Start(ctx, a.Name, s.ID); err != nil {
					b.Fatal(err)
				}
				if _, err := m.Join(ctx, a.Name, s.ID); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			after := heapAlloc()
			goroutines = float64(runtime.NumGoroutine())
			perSession = (float64(after) - float64(before)) / openSessions
			list, err := m.List(ctx, accts[0].Name)
			if err != nil || len(list) != limits.PaidPlan.MaxConcurrent || list[0].State != fsm.Connected {
				b.Fatalf("List(%s) = %d sessions (%v), want %d connected", accts[0].Name, len(list), err, limits.PaidPlan.MaxConcurrent)
			}
			cancel()
			if err := m.Close(ctx); err != nil {
				b.Fatal(err)
			}
			_ = lim.Close()
			b.StartTimer()
		}
		b.ReportMetric(perSession, "B/session")
		b.ReportMetric(goroutines, "goroutines")
	})
}

// heapAlloc returns the bytes of live heap objects after a full collection.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
