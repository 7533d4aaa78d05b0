package redisstore

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/session"
)

// BenchmarkStore compares a whole session's life in the store (insert,
// four transitions, delete: six round trips) with six PINGs on the same
// client, the floor of six round trips; both from 32 goroutines.
func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Start(b)
	client := srv.Client()
	s, err := New(client, Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := s.Watch(func(session.Event) {}); err != nil {
		b.Fatal(err)
	}
	b.Run("six PINGs", func(b *testing.B) {
		b.SetParallelism(16) // 32 goroutines on 2 CPUs
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for range 6 {
					if err := client.Ping(ctx).Err(); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	})
	var seq atomic.Int64
	b.Run("lifecycle", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := "b" + strconv.FormatInt(seq.Add(1), 10)
				if _, err := s.Insert(ctx, newRecord(id)); err != nil {
					b.Error(err)
					return
				}
				for _, ev := range fsm.Events() {
					if _, _, err := s.Transition(ctx, "acme", id, session.Change{Event: ev, At: t0}); err != nil {
						b.Error(err)
						return
					}
				}
				if _, err := s.Delete(ctx, "acme", id, 5, t0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
