package session

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/streamsession/streamsession/fsm"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newRecord(id string) Record {
	return Record{Info: Info{ID: id, Account: "acme", State: fsm.New, Epoch: 1, CreatedAt: t0, IdleTimeout: time.Minute,
		DurationLimit: 10 * time.Minute}, JoinTimeout: 5 * time.Minute, Retention: 10 * time.Minute}
}

func TestNextTimeout(t *testing.T) {
	base := newRecord("x")
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tests := []struct {
		name   string
		mutate func(r *Record)
		at     time.Time
		kind   Timeout
	}{
		{"new: join", func(r *Record) {}, at(5 * time.Minute), TimeoutJoin},
		{"connecting: join before duration", func(r *Record) { r.State, r.StartedAt = fsm.Connecting, at(time.Minute) }, at(5 * time.Minute), TimeoutJoin},
		{"connecting: duration before join", func(r *Record) {
			r.State, r.StartedAt, r.DurationLimit = fsm.Connecting, at(time.Minute), time.Minute
		}, at(2 * time.Minute), TimeoutDuration},
		{"connected: idle", func(r *Record) { r.State, r.StartedAt, r.LastActivity = fsm.Connected, at(0), at(2*time.Minute) }, at(3 * time.Minute), TimeoutIdle},
		{"connected: duration before idle", func(r *Record) {
			r.State, r.StartedAt, r.LastActivity = fsm.Connected, at(0), at(9*time.Minute+30*time.Second)
		}, at(10 * time.Minute), TimeoutDuration},
		{"connected: tie goes to duration", func(r *Record) {
			r.State, r.StartedAt, r.LastActivity = fsm.Connected, at(0), at(9*time.Minute)
		}, at(10 * time.Minute), TimeoutDuration},
		{"connected: idle disabled", func(r *Record) {
			r.State, r.StartedAt, r.LastActivity, r.DisableIdleTimeout = fsm.Connected, at(0), at(0), true
		}, at(10 * time.Minute), TimeoutDuration},
		{"connected: no timer", func(r *Record) {
			r.State, r.StartedAt, r.LastActivity, r.DisableIdleTimeout, r.DurationLimit = fsm.Connected, at(0), at(0), true, 0
		}, time.Time{}, TimeoutNone},
		{"closing: none", func(r *Record) { r.State = fsm.Closing }, time.Time{}, TimeoutNone},
		{"closed: retention", func(r *Record) { r.State, r.ClosedAt = fsm.Closed, at(time.Minute) }, at(11 * time.Minute), TimeoutRetention},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			tt.mutate(&r)
			gotAt, kind := r.NextTimeout()
			assert.Equal(t, tt.kind, kind)
			assert.True(t, tt.at.Equal(gotAt), "NextTimeout() = %v, want %v", gotAt, tt.at)
		})
	}
}

// The Store contract of MemoryStore is checked by session/storetest (run
// from that package's tests); what follows is MemoryStore's own.

func TestMemoryStoreShardsRoundUp(t *testing.T) {
	for shards, want := range map[int]int{0: 64, 1: 1, 3: 4, 64: 64, 65: 128} {
		assert.Len(t, NewMemoryStore(MemoryStoreConfig{Shards: shards}).shards, want, "Shards: %d", shards)
	}
}

func TestMemoryStoreDue(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(MemoryStoreConfig{})
	_, next, err := s.Due(ctx, t0, nil)
	require.NoError(t, err)
	assert.True(t, next.IsZero(), "nothing to wait for")

	for _, id := range []string{"a", "b", "c"} {
		_, err := s.Insert(ctx, newRecord(id))
		require.NoError(t, err)
	}
	select {
	case <-s.Wake():
	default:
		t.Fatal("an earlier deadline wakes the loop")
	}
	// c connects, so its join deadline no longer applies.
	_, _, _ = s.Transition(ctx, "acme", "c", Change{Event: fsm.EventStart, At: t0})
	_, _, _ = s.Transition(ctx, "acme", "c", Change{Event: fsm.EventJoin, At: t0})
	due, next, err := s.Due(ctx, t0.Add(30*time.Second), nil)
	require.NoError(t, err)
	assert.Empty(t, due)
	assert.Equal(t, t0.Add(time.Minute), next, "c's idle deadline")

	// Activity moves c's deadline without a heap operation; when the old
	// entry fires it re-arms.
	_, _ = s.Touch(ctx, "acme", "c", t0.Add(50*time.Second))
	due, next, _ = s.Due(ctx, t0.Add(time.Minute), nil)
	assert.Empty(t, due)
	assert.Equal(t, t0.Add(110*time.Second), next)

	due, _, _ = s.Due(ctx, t0.Add(5*time.Minute), make([]Due, 0, 1))
	require.Len(t, due, 1, "cap(buf) bounds a batch")
	due2, next, _ := s.Due(ctx, t0.Add(5*time.Minute), nil)
	due = append(due, due2...)
	got := map[string]Timeout{}
	for _, d := range due {
		got[d.Record.ID] = d.Timeout
	}
	assert.Equal(t, map[string]Timeout{"a": TimeoutJoin, "b": TimeoutJoin, "c": TimeoutIdle}, got)
	assert.True(t, next.IsZero(), "reported deadlines are not reported again")
	due, _, _ = s.Due(ctx, t0.Add(time.Hour), nil)
	assert.Empty(t, due)
}

// TestTimerHeapAgainstModel: the shard's indexed heap, under any sequence of
// deadlines set, moved and removed, keeps one entry per record at the
// deadline last set, each record's slot pointing at its entry, the earliest
// entry on top, and pops deadlines in order.
func TestTimerHeapAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var h timerHeap
		recs := make([]*memRecord, 8)
		for i := range recs {
			recs[i] = &memRecord{id: strconv.Itoa(i)}
		}
		model := map[*memRecord]int64{}
		check := func() {
			require.Len(t, h, len(model))
			for i, e := range h {
				require.Equal(t, int32(i+1), e.rec.slot, "slot of %s", e.rec.id)
				require.Equal(t, model[e.rec], e.at, "deadline of %s", e.rec.id)
				if i > 0 {
					require.LessOrEqual(t, h[(i-1)/2].at, e.at, "heap order at %d", i)
				}
			}
			for r := range model {
				require.NotZero(t, r.slot)
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"set": func(t *rapid.T) {
				r := rapid.SampledFrom(recs).Draw(t, "rec")
				at := rapid.Int64Range(1, 20).Draw(t, "at")
				h.set(r, at)
				model[r] = at
				check()
			},
			"remove": func(t *rapid.T) {
				if len(model) == 0 {
					t.Skip("empty")
				}
				r := rapid.SampledFrom(recs).Filter(func(r *memRecord) bool { return r.slot != 0 }).Draw(t, "rec")
				h.remove(r)
				delete(model, r)
				require.Zero(t, r.slot)
				check()
			},
			"pop": func(t *rapid.T) {
				if len(model) == 0 {
					t.Skip("empty")
				}
				earliest := int64(math.MaxInt64)
				for _, at := range model {
					earliest = min(earliest, at)
				}
				r := h[0].rec
				require.Equal(t, earliest, h[0].at)
				h.remove(r)
				delete(model, r)
				check()
			},
		})
	})
}
