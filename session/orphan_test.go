package session

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
)

// sharedStore is a MemoryStore that says it is shared by several nodes (a
// SharedStore) and also reports the Dues a test injects, as a distributed
// store reports the sessions stuck in closing.
type sharedStore struct {
	*MemoryStore
	wake chan struct{}

	mu      sync.Mutex
	pending []Due
}

func newSharedStore() *sharedStore {
	return &sharedStore{MemoryStore: NewMemoryStore(MemoryStoreConfig{}), wake: make(chan struct{}, 1)}
}

func (s *sharedStore) Shared() bool { return true }

func (s *sharedStore) inject(d Due) {
	s.mu.Lock()
	s.pending = append(s.pending, d)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sharedStore) Due(ctx context.Context, now time.Time, buf []Due) ([]Due, time.Time, error) {
	due, next, err := s.MemoryStore.Due(ctx, now, buf)
	s.mu.Lock()
	due = append(due, s.pending...)
	s.pending = nil
	s.mu.Unlock()
	return due, next, err
}

// Wake merges the MemoryStore's wake-ups with the injections.
func (s *sharedStore) Wake() <-chan struct{} {
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

// releaseFailer is a fakeLimiter whose Release fails (and frees nothing)
// while fail is set.
type releaseFailer struct {
	*fakeLimiter
	fail atomic.Bool
}

func (l *releaseFailer) Release(ctx context.Context, lease limits.Lease) error {
	if l.fail.Load() {
		return errUnavailableForTest
	}
	return l.fakeLimiter.Release(ctx, lease)
}

func TestTimeoutOrphaned(t *testing.T) {
	assert.Equal(t, "orphaned", TimeoutOrphaned.String())
	assert.Equal(t, ReasonNone, TimeoutOrphaned.Reason(), "an orphaned close keeps the reason it began with")
	assert.Equal(t, "node_lost", ReasonNodeLost.String(), "records of earlier versions still read back")
	at, kind := Record{Info: Info{State: fsm.Closing}}.NextTimeout()
	assert.Equal(t, TimeoutNone, kind, "NextTimeout never reports an orphan")
	assert.True(t, at.IsZero())

	t.Run("an open session is never closed as orphaned", func(t *testing.T) {
		sharedTest(t, nil, func(t *testing.T, store *sharedStore, m *Manager, lim *fakeLimiter, log *eventLog) {
			s := connected(t, m, acme, CreateOptions{})
			rec, err := store.Get(context.Background(), "acme", s.ID)
			require.NoError(t, err)
			advance(time.Second)
			store.inject(Due{Record: rec, Timeout: TimeoutOrphaned, At: time.Now()})
			advance(0)
			assertOpen(t, m, lim, s.ID, fsm.Connected)
			assert.True(t, lim.isKept(s.ID))
		})
	})
	t.Run("a stale orphan changes nothing", func(t *testing.T) {
		sharedTest(t, nil, func(t *testing.T, store *sharedStore, m *Manager, lim *fakeLimiter, log *eventLog) {
			ctx := context.Background()
			s, err := m.Create(ctx, acme, CreateOptions{})
			require.NoError(t, err)
			rec, _, err := store.Transition(ctx, "acme", s.ID, Change{Event: fsm.EventClose, At: time.Now(), Reason: ReasonStop})
			require.NoError(t, err)
			_, _, err = store.Transition(ctx, "acme", s.ID, Change{Event: fsm.EventClosed, At: time.Now()})
			require.NoError(t, err)
			advance(0)
			closed, _ := store.Get(ctx, "acme", s.ID)
			events := len(log.of(s.ID))
			store.inject(Due{Record: rec, Timeout: TimeoutOrphaned, At: time.Now()})
			advance(time.Second)
			again, _ := store.Get(ctx, "acme", s.ID)
			assert.Equal(t, closed, again, "a session closed since it was found orphaned is left alone")
			assert.Len(t, log.of(s.ID), events)
		})
	})
	t.Run("a close left half done is finished once", func(t *testing.T) {
		sharedTest(t, nil, func(t *testing.T, store *sharedStore, m *Manager, lim *fakeLimiter, log *eventLog) {
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
	t.Run("a close whose release failed stays closing until the release works", func(t *testing.T) {
		lim := &releaseFailer{}
		sharedTest(t, func(f *fakeLimiter) limits.Limiter { lim.fakeLimiter = f; return lim },
			func(t *testing.T, store *sharedStore, m *Manager, _ *fakeLimiter, log *eventLog) {
				ctx := context.Background()
				s := connected(t, m, acme, CreateOptions{})
				lim.fail.Store(true)
				_, err := m.Stop(ctx, "acme", s.ID)
				require.ErrorIs(t, err, limits.ErrUnavailable, "Stop whose release failed")
				rec, err := store.Get(ctx, "acme", s.ID)
				require.NoError(t, err)
				assert.Equal(t, fsm.Closing, rec.State, "a kept slot is never left behind a closed session")
				assert.True(t, lim.holds(s.ID))

				// The store reports it (its closing grace passed): still failing.
				advance(time.Minute)
				store.inject(Due{Record: rec, Timeout: TimeoutOrphaned, At: time.Now()})
				advance(0)
				again, _ := store.Get(ctx, "acme", s.ID)
				assert.Equal(t, rec, again)

				// Reported again once the limiter answers: finished.
				lim.fail.Store(false)
				advance(10 * time.Second)
				store.inject(Due{Record: rec, Timeout: TimeoutOrphaned, At: time.Now()})
				advance(0)
				assertClosedAt(t, m, lim.fakeLimiter, log, s.ID, time.Now(), ReasonStop)
			})
	})
}

func TestSharedStoreKeepsSlots(t *testing.T) {
	const ttl = 30 * time.Second
	withTTL := func(f *fakeLimiter) limits.Limiter { f.ttl = ttl; return f }
	t.Run("a recorded session's slot is kept and never renewed", func(t *testing.T) {
		sharedTest(t, withTTL, func(t *testing.T, store *sharedStore, m *Manager, lim *fakeLimiter, log *eventLog) {
			s := connected(t, m, Account{Name: "acme", Plan: paidPlan}, CreateOptions{DisableIdleTimeout: true})
			assert.True(t, lim.isKept(s.ID))
			advance(10 * ttl)
			assertOpen(t, m, lim, s.ID, fsm.Connected)
			lim.mu.Lock()
			renewals, keeps := lim.renewals, lim.keeps
			lim.mu.Unlock()
			assert.Zero(t, renewals, "renewals of kept slots")
			assert.Equal(t, 1, keeps)
			_, err := m.Stop(context.Background(), "acme", s.ID)
			require.NoError(t, err)
			advance(0)
			assertClosedAt(t, m, lim, log, s.ID, time.Now(), ReasonStop)
		})
	})
	t.Run("a failed keep is retried by the renewer", func(t *testing.T) {
		sharedTest(t, withTTL, func(t *testing.T, store *sharedStore, m *Manager, lim *fakeLimiter, log *eventLog) {
			lim.mu.Lock()
			lim.keepErr = errUnavailableForTest
			lim.mu.Unlock()
			s, err := m.Create(context.Background(), acme, CreateOptions{})
			require.NoError(t, err, "the session is recorded: a limiter hiccup does not fail Create")
			assert.False(t, lim.isKept(s.ID))
			advance(ttl / 3)
			lim.mu.Lock()
			assert.Equal(t, 2, lim.keeps, "one retry a round")
			lim.keepErr = nil
			lim.mu.Unlock()
			advance(ttl / 3)
			assert.True(t, lim.isKept(s.ID))
			advance(ttl)
			lim.mu.Lock()
			assert.Equal(t, 3, lim.keeps, "no retry once kept")
			lim.mu.Unlock()
			assertOpen(t, m, lim, s.ID, fsm.New)
		})
	})
	t.Run("a lease lost before it was kept closes the session", func(t *testing.T) {
		sharedTest(t, withTTL, func(t *testing.T, store *sharedStore, m *Manager, lim *fakeLimiter, log *eventLog) {
			lim.mu.Lock()
			lim.keepErr = limits.ErrLeaseExpired
			lim.mu.Unlock()
			_, err := m.Create(context.Background(), acme, CreateOptions{})
			require.ErrorIs(t, err, limits.ErrUnavailable)
			advance(0)
			require.NotEmpty(t, log.snapshot())
			id := log.snapshot()[0].SessionID
			assertClosedAt(t, m, lim, log, id, time.Now(), ReasonLeaseLost)
		})
	})
	t.Run("a lease lost while its keep is retried closes the session", func(t *testing.T) {
		sharedTest(t, withTTL, func(t *testing.T, store *sharedStore, m *Manager, lim *fakeLimiter, log *eventLog) {
			lim.mu.Lock()
			lim.keepErr = errUnavailableForTest
			lim.mu.Unlock()
			s, err := m.Create(context.Background(), acme, CreateOptions{})
			require.NoError(t, err)
			advance(ttl / 3)
			lim.mu.Lock()
			lim.keepErr = nil
			lim.expire[s.ID] = true
			lim.mu.Unlock()
			advance(ttl / 3)
			assertClosedAt(t, m, lim, log, s.ID, time.Now(), ReasonLeaseLost)
		})
	})
	t.Run("a plain store renews and never keeps", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := newFakeLimiter(10)
			lim.ttl = ttl
			m, _ := newTestManager(t, Config{Limiter: lim})
			s, err := m.Create(context.Background(), acme, CreateOptions{})
			require.NoError(t, err)
			advance(ttl)
			lim.mu.Lock()
			assert.Zero(t, lim.keeps)
			assert.Equal(t, 3, lim.renewals)
			lim.mu.Unlock()
			assert.False(t, lim.isKept(s.ID))
			closeManager(t, m)
		})
	})
}

// sharedTest is timerTest on a sharedStore made inside the bubble (a
// channel made outside it would keep the bubble's clock from advancing).
// wrap, when set, prepares the fake limiter and returns the Limiter the
// Manager uses.
func sharedTest(t *testing.T, wrap func(*fakeLimiter) limits.Limiter, f func(t *testing.T, store *sharedStore, m *Manager, lim *fakeLimiter, log *eventLog)) {
	synctest.Test(t, func(t *testing.T) {
		store := newSharedStore()
		lim := newFakeLimiter(1000)
		var l limits.Limiter = lim
		if wrap != nil {
			l = wrap(lim)
		}
		m, _ := newTestManager(t, Config{Store: store, Limiter: l})
		log := &eventLog{}
		cancel := m.Subscribe(log.add)
		f(t, store, m, lim, log)
		synctest.Wait()
		cancel()
		closeManager(t, m)
	})
}

// hangingKeeper is a fakeLimiter whose Keep, while hang is set, waits for
// its ctx to end and fails as an unreachable backend does.
type hangingKeeper struct {
	*fakeLimiter
	hang atomic.Bool
}

func (l *hangingKeeper) Keep(ctx context.Context, lease limits.Lease) error {
	if l.hang.Load() {
		<-ctx.Done()
		return limits.ErrUnavailable.WithCause(ctx.Err())
	}
	return l.fakeLimiter.Keep(ctx, lease)
}

// TestCreateKeepsItsDeadline: a Keep the limiter does not answer does not
// hold Create past its caller's deadline; the session is recorded and the
// renewer keeps its slot once the limiter answers.
func TestCreateKeepsItsDeadline(t *testing.T) {
	const ttl = 30 * time.Second
	lim := &hangingKeeper{}
	sharedTest(t, func(f *fakeLimiter) limits.Limiter { f.ttl = ttl; lim.fakeLimiter = f; return lim },
		func(t *testing.T, store *sharedStore, m *Manager, _ *fakeLimiter, log *eventLog) {
			lim.hang.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			s, err := m.Create(ctx, acme, CreateOptions{})
			require.NoError(t, err, "the session is recorded: the Keep is left to the renewer")
			assert.Equal(t, time.Second, time.Since(start), "Create returned at its deadline")
			assertOpen(t, m, lim.fakeLimiter, s.ID, fsm.New)
			assert.False(t, lim.isKept(s.ID))
			lim.hang.Store(false)
			advance(ttl / 3)
			assert.True(t, lim.isKept(s.ID))
		})
}
