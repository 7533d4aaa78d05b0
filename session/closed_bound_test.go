package session

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
)

// closeRecord moves the record id of acme from new to closed.
func closeRecord(t *testing.T, s *MemoryStore, id string) {
	t.Helper()
	ctx := context.Background()
	for _, ev := range []fsm.Event{fsm.EventClose, fsm.EventClosed} {
		_, _, err := s.Transition(ctx, "acme", id, Change{Event: ev, At: t0})
		require.NoError(t, err)
	}
}

// TestMemoryStoreBoundsClosedPerAccount: past MaxClosedPerAccount, the
// oldest closed session of the account is forgotten (10006, closed →
// unknown for the watcher); open sessions, other accounts and sessions
// forgotten by their retention timer do not count.
func TestMemoryStoreBoundsClosedPerAccount(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(MemoryStoreConfig{MaxClosedPerAccount: 3})
	var forgotten []string
	require.NoError(t, s.Watch(func(e Event) {
		if e.To == fsm.Unknown {
			forgotten = append(forgotten, e.SessionID)
		}
	}))
	ids := make([]string, 6)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%d", i)
		_, err := s.Insert(ctx, newRecord(ids[i]))
		require.NoError(t, err)
	}
	other := newRecord("other")
	other.Account = "globex"
	_, err := s.Insert(ctx, other)
	require.NoError(t, err)
	_, _, err = s.Transition(ctx, "globex", "other", Change{Event: fsm.EventClose, At: t0})
	require.NoError(t, err)
	_, _, err = s.Transition(ctx, "globex", "other", Change{Event: fsm.EventClosed, At: t0})
	require.NoError(t, err)

	for _, id := range ids[:3] {
		closeRecord(t, s, id)
	}
	assert.Empty(t, forgotten, "within the bound")

	// The retention timer forgets s1: it leaves room for one more.
	rec, err := s.Get(ctx, "acme", "s1")
	require.NoError(t, err)
	_, err = s.Delete(ctx, "acme", "s1", rec.Epoch, t0)
	require.NoError(t, err)
	forgotten = nil
	closeRecord(t, s, "s3")
	assert.Empty(t, forgotten)

	closeRecord(t, s, "s4")
	closeRecord(t, s, "s5")
	assert.Equal(t, []string{"s0", "s2"}, forgotten, "oldest first")
	for _, id := range []string{"s0", "s1", "s2"} {
		_, err := s.Get(ctx, "acme", id)
		assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, id)
	}
	for _, id := range []string{"s3", "s4", "s5"} {
		rec, err := s.Get(ctx, "acme", id)
		require.NoError(t, err, id)
		assert.Equal(t, fsm.Closed, rec.State)
	}
	rec, err = s.Get(ctx, "globex", "other")
	require.NoError(t, err)
	assert.Equal(t, fsm.Closed, rec.State)
	// A forgotten session's timer is gone with it.
	due, _, err := s.Due(ctx, t0.Add(DefaultRetention*2), nil)
	require.NoError(t, err)
	for _, d := range due {
		assert.NotContains(t, []string{"s0", "s1", "s2"}, d.Record.ID)
	}
}

// TestMemoryStoreUnboundedClosed: a negative MaxClosedPerAccount keeps
// every closed session for its retention window.
func TestMemoryStoreUnboundedClosed(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(MemoryStoreConfig{MaxClosedPerAccount: -1})
	for i := range 50 {
		id := fmt.Sprintf("s%d", i)
		_, err := s.Insert(ctx, newRecord(id))
		require.NoError(t, err)
		closeRecord(t, s, id)
	}
	_, err := s.Get(ctx, "acme", "s0")
	assert.NoError(t, err)
}

// heapAfterGC is the live heap, in bytes.
func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestChurnHeapLevelsOff: one trial account creating and stopping
// sessions without pause, within the retention window: with the bound,
// the heap after 8,000 sessions is where it was after 2,000; without it,
// it grows with every session (the check can fail).
func TestChurnHeapLevelsOff(t *testing.T) {
	const phase = 2000
	churn := func(t *testing.T, maxClosed int) (first, last uint64) {
		// The memory limiter keeps nothing per closed session (the test
		// limiter records every release).
		lim := limits.NewMemory(limits.MemoryConfig{Capacity: 10})
		defer lim.Close()
		m, _ := newTestManager(t, Config{Limiter: lim, Store: NewMemoryStore(MemoryStoreConfig{MaxClosedPerAccount: maxClosed})})
		defer closeManager(t, m)
		ctx := context.Background()
		acct := Account{Name: "trial", Plan: limits.TrialPlan}
		var oldest string
		for p := range 4 {
			for range phase {
				info, err := m.Create(ctx, acct, CreateOptions{})
				require.NoError(t, err)
				if oldest == "" {
					oldest = info.ID
				}
				_, err = m.Stop(ctx, acct.Name, info.ID)
				require.NoError(t, err)
			}
			if p == 0 {
				first = heapAfterGC()
			}
		}
		last = heapAfterGC()
		_, err := m.Get(ctx, acct.Name, oldest)
		if maxClosed > 0 {
			assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "the oldest closed session is forgotten")
		} else {
			assert.NoError(t, err)
		}
		t.Logf("MaxClosedPerAccount %d: heap %d KiB after %d sessions, %d KiB after %d",
			maxClosed, first>>10, phase, last>>10, 4*phase)
		return first, last
	}
	first, last := churn(t, 100)
	assert.Less(t, int64(last)-int64(first), int64(256<<10), "bounded: the heap levels off")
	first, last = churn(t, -1)
	assert.Greater(t, int64(last)-int64(first), int64(1<<20), "unbounded: the heap grows")
}
