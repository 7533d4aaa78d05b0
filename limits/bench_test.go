package limits_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/semaphore"

	"github.com/streamsession/streamsession/limits"
)

// The benchmarks measure one Acquire + Release pair on the in-memory
// limiter and, in the same run, the same pair on golang.org/x/sync/semaphore
// (one Weighted with the same capacity), the floor for "count a slot, give
// it back". Compare them as ratios: absolute times on shared machines are
// noise.
//
//	go test -run='^$' -bench=. -benchmem ./limits/

const benchCapacity = 1 << 20

// benchIDs are session ids made before the timer starts, so that the
// benchmarks measure the limiter, not fmt.
var benchIDs = func() []string {
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("session-%04d", i)
	}
	return ids
}()

func newBenchMemory(b *testing.B) *limits.Memory {
	m := limits.NewMemory(limits.MemoryConfig{Capacity: benchCapacity})
	b.Cleanup(func() { _ = m.Close() })
	return m
}

func acquireRelease(b *testing.B, m *limits.Memory, req limits.Request) {
	d, err := m.Acquire(context.Background(), req)
	if err != nil || !d.Granted() {
		b.Fatalf("Acquire = %v, %v", d.Refused, err)
	}
	_ = m.Release(context.Background(), d.Lease)
}

func semaphoreAcquireRelease(b *testing.B, s *semaphore.Weighted) {
	if err := s.Acquire(context.Background(), 1); err != nil {
		b.Fatal(err)
	}
	s.Release(1)
}

func BenchmarkAcquireRelease(b *testing.B) {
	paid := limits.Plan{Name: "p", MaxConcurrent: 100}
	b.Run("serial/memory", func(b *testing.B) {
		m := newBenchMemory(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			acquireRelease(b, m, limits.Request{Account: "acct", Plan: paid, SessionID: benchIDs[i&1023]})
			i++
		}
	})
	b.Run("serial/memory-trial-lifecycle", func(b *testing.B) {
		// Acquire, Started, Renew, Release: a trial session's whole life.
		m := newBenchMemory(b)
		ctx := context.Background()
		plan := limits.Plan{Name: "t", Trial: true, MonthlyMinutes: 1 << 30, MaxConcurrent: 3}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d, err := m.Acquire(ctx, limits.Request{Account: "acct", Plan: plan, SessionID: benchIDs[i&1023]})
			if err != nil || !d.Granted() {
				b.Fatalf("Acquire = %v, %v", d.Refused, err)
			}
			_ = m.Started(ctx, d.Lease)
			_, _ = m.Renew(ctx, d.Lease)
			_ = m.Release(ctx, d.Lease)
			i++
		}
	})
	b.Run("serial/semaphore", func(b *testing.B) {
		s := semaphore.NewWeighted(benchCapacity)
		b.ReportAllocs()
		for b.Loop() {
			semaphoreAcquireRelease(b, s)
		}
	})
	b.Run("parallel-distinct-accounts/memory", func(b *testing.B) {
		m := newBenchMemory(b)
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			account := fmt.Sprint("acct-", next.Add(1))
			i := 0
			for pb.Next() {
				acquireRelease(b, m, limits.Request{Account: account, Plan: paid, SessionID: benchIDs[i&1023]})
				i++
			}
		})
	})
	b.Run("parallel-shared-account/memory", func(b *testing.B) {
		m := newBenchMemory(b)
		var next atomic.Int64
		many := limits.Plan{Name: "many", MaxConcurrent: benchCapacity}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ids := make([]string, 64)
			g := next.Add(1)
			for i := range ids {
				ids[i] = fmt.Sprint("g", g, "-", i)
			}
			i := 0
			for pb.Next() {
				acquireRelease(b, m, limits.Request{Account: "shared", Plan: many, SessionID: ids[i&63]})
				i++
			}
		})
	})
	b.Run("parallel/semaphore", func(b *testing.B) {
		s := semaphore.NewWeighted(benchCapacity)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				semaphoreAcquireRelease(b, s)
			}
		})
	})
}
