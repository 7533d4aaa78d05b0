package session

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
)

var errStoreDown = errors.New("store down")

// failingStore is a MemoryStore whose Due, Delete or close transitions fail
// while the test says so.
type failingStore struct {
	*MemoryStore
	mu        sync.Mutex
	failDue   bool
	failClose bool // EventClose
	failDel   bool
	dues      int // Due calls
}

func (s *failingStore) set(f func(s *failingStore)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

func (s *failingStore) Due(ctx context.Context, now time.Time, buf []Due) ([]Due, time.Time, error) {
	s.mu.Lock()
	s.dues++
	fail := s.failDue
	s.mu.Unlock()
	if fail {
		return buf[:0], time.Time{}, errStoreDown
	}
	return s.MemoryStore.Due(ctx, now, buf)
}

func (s *failingStore) Transition(ctx context.Context, account, id string, ch Change) (Record, fsm.State, error) {
	s.mu.Lock()
	fail := s.failClose && ch.Event == fsm.EventClose
	s.mu.Unlock()
	if fail {
		return Record{}, fsm.Unknown, errStoreDown
	}
	return s.MemoryStore.Transition(ctx, account, id, ch)
}

func (s *failingStore) Delete(ctx context.Context, account, id string, epoch uint64, at time.Time) (Record, error) {
	s.mu.Lock()
	fail := s.failDel
	s.mu.Unlock()
	if fail {
		return Record{}, errStoreDown
	}
	return s.MemoryStore.Delete(ctx, account, id, epoch, at)
}

// backgroundLog records Hooks.OnBackgroundError calls.
type backgroundLog struct {
	mu   sync.Mutex
	errs []backgroundErr
}

type backgroundErr struct {
	op  BackgroundOp
	err error
}

func (l *backgroundLog) add(op BackgroundOp, err error) {
	l.mu.Lock()
	l.errs = append(l.errs, backgroundErr{op, err})
	l.mu.Unlock()
}

func (l *backgroundLog) ops() []BackgroundOp {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []BackgroundOp
	for _, e := range l.errs {
		out = append(out, e.op)
	}
	return out
}

// TestBackgroundFailuresReachTheHook: a failed timer close, a failed Due
// and a failed forget each reach Hooks.OnBackgroundError with the store's
// error, and the work is done once the store recovers.
func TestBackgroundFailuresReachTheHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &failingStore{MemoryStore: NewMemoryStore(MemoryStoreConfig{})}
		var bg backgroundLog
		m, lim := newTestManager(t, Config{Store: store, JoinTimeout: time.Minute, Retention: time.Minute,
			Hooks: Hooks{OnBackgroundError: bg.add}})
		defer closeManager(t, m)

		// The join timer fires while the store cannot close.
		s, err := m.Create(ctx, acme, CreateOptions{})
		require.NoError(t, err)
		store.set(func(s *failingStore) { s.failClose = true })
		advance(time.Minute)
		assert.Equal(t, []BackgroundOp{BackgroundTimerClose}, bg.ops())
		bg.mu.Lock()
		assert.ErrorIs(t, bg.errs[0].err, errStoreDown)
		bg.mu.Unlock()
		got, err := m.Get(ctx, "acme", s.ID)
		require.NoError(t, err)
		assert.Equal(t, fsm.New, got.State, "nothing changed")
		assert.True(t, lim.holds(s.ID))

		// Due fails: reported, and asked again a second later.
		store.set(func(s *failingStore) { s.failDue, s.dues = true, 0 })
		_, err = m.Create(ctx, acme, CreateOptions{}) // an earlier deadline wakes the loop
		require.NoError(t, err)
		synctest.Wait()
		advance(time.Second)
		store.mu.Lock()
		assert.Equal(t, 2, store.dues, "retried after a second")
		store.mu.Unlock()
		assert.Equal(t, []BackgroundOp{BackgroundTimerClose, BackgroundDue, BackgroundDue}, bg.ops())

		// The store recovers: the next session closes on its timer, then
		// its forget fails.
		store.set(func(s *failingStore) { s.failDue, s.failClose, s.failDel = false, false, true })
		advance(2 * time.Minute) // the join deadline, then the retention's
		ops := bg.ops()
		assert.Equal(t, BackgroundForget, ops[len(ops)-1], "the forget failed: %v", ops)
	})
}

// TestRaceLostIsNotABackgroundFailure: what a timer or the renewer gets
// when another change got there first is not reported; anything else is.
func TestRaceLostIsNotABackgroundFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"conflict", ErrConflict, false},
		{"conflict retries did not settle", sserrors.ErrInternalServerError.WithCause(ErrConflict), true},
		{"state", fsm.StateError(fsm.Closed), false},
		{"forgotten", sserrors.ErrSessionNotFound, false},
		{"store", errStoreDown, true},
		{"internal", sserrors.ErrInternalServerError.WithCause(errStoreDown), true},
		{"limiter", limits.ErrUnavailable, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, backgroundFailure(tc.err), "backgroundFailure(%v)", tc.err)
		})
	}
}

// TestRenewFailureReachesTheHook: a renewal the limiter cannot make is
// reported (and the session stays open); a lease the limiter says expired
// closes its session without a report.
func TestRenewFailureReachesTheHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var bg backgroundLog
		lim := &renewFailingLimiter{fakeLimiter: newFakeLimiter(10)}
		m, _ := newTestManager(t, Config{Limiter: lim, LeaseRenewInterval: time.Second,
			Hooks: Hooks{OnBackgroundError: bg.add}})
		defer closeManager(t, m)
		a, err := m.Create(ctx, acme, CreateOptions{})
		require.NoError(t, err)
		b, err := m.Create(ctx, acme, CreateOptions{})
		require.NoError(t, err)
		lim.mu.Lock()
		lim.failRenew = map[string]bool{a.ID: true}
		lim.expire[b.ID] = true
		lim.mu.Unlock()
		advance(time.Second)
		require.Equal(t, []BackgroundOp{BackgroundRenew}, bg.ops())
		bg.mu.Lock()
		assert.ErrorIs(t, bg.errs[0].err, limits.ErrUnavailable)
		bg.mu.Unlock()
		got, _ := m.Get(ctx, "acme", a.ID)
		assert.Equal(t, fsm.New, got.State, "a renewal failure leaves the session running")
		got, _ = m.Get(ctx, "acme", b.ID)
		assert.Equal(t, ReasonLeaseLost, got.Reason)
	})
}

// renewFailingLimiter is a fakeLimiter whose Renew fails (unavailable) for
// the sessions of failRenew.
type renewFailingLimiter struct {
	*fakeLimiter
	failRenew map[string]bool // guarded by fakeLimiter.mu
}

func (l *renewFailingLimiter) Renew(ctx context.Context, lease limits.Lease) (limits.Lease, error) {
	l.mu.Lock()
	fail := l.failRenew[lease.SessionID]
	l.mu.Unlock()
	if fail {
		return limits.Lease{}, limits.ErrUnavailable
	}
	return l.fakeLimiter.Renew(ctx, lease)
}

func TestBackgroundOpString(t *testing.T) {
	for op, want := range map[BackgroundOp]string{
		BackgroundDue: "due", BackgroundTimerClose: "timer_close", BackgroundForget: "forget",
		BackgroundFinishClose: "finish_close", BackgroundRenew: "renew", BackgroundShutdownClose: "shutdown_close",
		BackgroundOp(0): "BackgroundOp(0)", BackgroundOp(99): "BackgroundOp(99)",
	} {
		assert.Equal(t, want, op.String())
	}
}

// TestSharedStoreBackgroundFailuresReachTheHook: with a SharedStore, a
// retried Keep the limiter cannot make and the release of an orphaned close
// that fails are background failures like a failed renewal: reported, and
// retried.
func TestSharedStoreBackgroundFailuresReachTheHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 30 * time.Second
		ctx := context.Background()
		var bg backgroundLog
		store := newSharedStore()
		lim := &releaseFailer{fakeLimiter: newFakeLimiter(10)}
		lim.ttl = ttl
		m, _ := newTestManager(t, Config{Store: store, Limiter: lim, Hooks: Hooks{OnBackgroundError: bg.add}})
		defer closeManager(t, m)

		lim.mu.Lock()
		lim.keepErr = errUnavailableForTest
		lim.mu.Unlock()
		s, err := m.Create(ctx, acme, CreateOptions{})
		require.NoError(t, err)
		advance(ttl / 3)
		require.Equal(t, []BackgroundOp{BackgroundRenew}, bg.ops(), "the retried Keep failed")
		bg.mu.Lock()
		assert.ErrorIs(t, bg.errs[0].err, limits.ErrUnavailable)
		bg.mu.Unlock()
		lim.mu.Lock()
		lim.keepErr = nil
		lim.mu.Unlock()
		advance(ttl / 3)
		require.True(t, lim.isKept(s.ID))
		assert.Len(t, bg.ops(), 1, "a Keep that worked is no failure")

		// A node moved it to closing and died; the release of the orphaned
		// close fails.
		rec, _, err := store.Transition(ctx, "acme", s.ID, Change{Event: fsm.EventClose, At: time.Now(), Reason: ReasonStop})
		require.NoError(t, err)
		lim.fail.Store(true)
		store.inject(Due{Record: rec, Timeout: TimeoutOrphaned, At: time.Now()})
		advance(0)
		assert.Equal(t, []BackgroundOp{BackgroundRenew, BackgroundFinishClose}, bg.ops(), "the orphan's release failed")
		got, err := m.Get(ctx, "acme", s.ID)
		require.NoError(t, err)
		assert.Equal(t, fsm.Closing, got.State)
		lim.fail.Store(false)
	})
}
