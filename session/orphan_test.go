package session

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
)

// orphanStore is a MemoryStore that also reports the Dues a test injects,
// as a distributed store reports the sessions of a dead node.
type orphanStore struct {
	*MemoryStore
	wake chan struct{}

	mu      sync.Mutex
	pending []Due
}

func newOrphanStore() *orphanStore {
	return &orphanStore{MemoryStore: NewMemoryStore(MemoryStoreConfig{}), wake: make(chan struct{}, 1)}
}

func (s *orphanStore) inject(d Due) {
	s.mu.Lock()
	s.pending = append(s.pending, d)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *orphanStore) Due(ctx context.Context, now time.Time, buf []Due) ([]Due, time.Time, error) {
	due, next, err := s.MemoryStore.Due(ctx, now, buf)
	s.mu.Lock()
	due = append(due, s.pending...)
	s.pending = nil
	s.mu.Unlock()
	return due, next, err
}

// Wake merges the MemoryStore's wake-ups with the injections.
func (s *orphanStore) Wake() <-chan struct{} {
	select {
	case <-s.MemoryStore.Wake():
		return closedWake
	default:
		return s.wake
	}
}

var closedWake = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func TestTimeoutOrphaned(t *testing.T) {
	assert.Equal(t, "orphaned", TimeoutOrphaned.String())
	assert.Equal(t, ReasonNodeLost, TimeoutOrphaned.Reason())
	assert.Equal(t, "node_lost", ReasonNodeLost.String())
	at, kind := Record{Info: Info{State: fsm.Closing}}.NextTimeout()
	assert.Equal(t, TimeoutNone, kind, "NextTimeout never reports an orphan")
	assert.True(t, at.IsZero())

	t.Run("an open session of a lost node is closed", func(t *testing.T) {
		orphanTest(t, func(t *testing.T, store *orphanStore, m *Manager, lim *fakeLimiter, log *eventLog) {
			s := connected(t, m, acme, CreateOptions{})
			rec, err := store.Get(context.Background(), "acme", s.ID)
			require.NoError(t, err)
			advance(time.Second)
			store.inject(Due{Record: rec, Timeout: TimeoutOrphaned, At: time.Now()})
			advance(0)
			assertClosedAt(t, m, lim, log, s.ID, time.Now(), ReasonNodeLost)
		})
	})
	t.Run("a stale orphan changes nothing", func(t *testing.T) {
		orphanTest(t, func(t *testing.T, store *orphanStore, m *Manager, lim *fakeLimiter, log *eventLog) {
			s, err := m.Create(context.Background(), acme, CreateOptions{})
			require.NoError(t, err)
			rec, _ := store.Get(context.Background(), "acme", s.ID)
			_, err = m.Start(context.Background(), "acme", s.ID)
			require.NoError(t, err)
			store.inject(Due{Record: rec, Timeout: TimeoutOrphaned, At: time.Now()})
			advance(0)
			assertOpen(t, m, lim, s.ID, fsm.Connecting)
		})
	})
	t.Run("a close left half done is finished once", func(t *testing.T) {
		orphanTest(t, func(t *testing.T, store *orphanStore, m *Manager, lim *fakeLimiter, log *eventLog) {
			ctx := context.Background()
			s, err := m.Create(ctx, acme, CreateOptions{})
			require.NoError(t, err)
			// A node moved it to closing and died before releasing it.
			rec, _, err := store.Transition(ctx, "acme", s.ID, Change{Event: fsm.EventClose, At: time.Now(), Reason: ReasonStop})
			require.NoError(t, err)
			advance(time.Minute)
			store.inject(Due{Record: rec, Timeout: TimeoutOrphaned, At: time.Now()})
			advance(0)
			assertClosedAt(t, m, lim, log, s.ID, time.Now(), ReasonStop)
			closed, _ := store.Get(ctx, "acme", s.ID)
			// The same orphan found again (by a second node) changes nothing.
			store.inject(Due{Record: rec, Timeout: TimeoutOrphaned, At: time.Now()})
			advance(time.Second)
			again, _ := store.Get(ctx, "acme", s.ID)
			assert.Equal(t, closed, again)
		})
	})
}

// orphanTest is timerTest on an orphanStore made inside the bubble (a
// channel made outside it would keep the bubble's clock from advancing).
func orphanTest(t *testing.T, f func(t *testing.T, store *orphanStore, m *Manager, lim *fakeLimiter, log *eventLog)) {
	synctest.Test(t, func(t *testing.T) {
		store := newOrphanStore()
		m, lim := newTestManager(t, Config{Store: store})
		log := &eventLog{}
		cancel := m.Subscribe(log.add)
		f(t, store, m, lim, log)
		synctest.Wait()
		cancel()
		closeManager(t, m)
	})
}
