package session

import (
	"context"
	"encoding/hex"
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

func TestNewManagerRejectsBadConfig(t *testing.T) {
	lim := newFakeLimiter(1)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no limiter", Config{Avatars: testAvatars}},
		{"no avatars", Config{Limiter: lim}},
		{"negative join timeout", Config{Limiter: lim, Avatars: testAvatars, JoinTimeout: -1}},
		{"negative retention", Config{Limiter: lim, Avatars: testAvatars, Retention: -1}},
		{"default idle too short", Config{Limiter: lim, Avatars: testAvatars, DefaultIdleTimeout: time.Second}},
		{"default idle too long", Config{Limiter: lim, Avatars: testAvatars, DefaultIdleTimeout: 2 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewManager(tt.cfg)
			assert.Error(t, err)
			assert.Nil(t, m)
		})
	}
	t.Run("store serving another manager", func(t *testing.T) {
		store := NewMemoryStore(MemoryStoreConfig{})
		m, _ := newTestManager(t, Config{Store: store})
		defer closeManager(t, m)
		_, err := NewManager(Config{Limiter: lim, Avatars: testAvatars, Store: store})
		assert.Error(t, err)
	})
}

func TestCreate(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		acct     Account
		opts     CreateOptions
		wantCode sserrors.Code
		want     Info // checked fields: AvatarID, IdleTimeout, DisableIdleTimeout, Paid, DurationLimit
	}{
		{name: "defaults", acct: acme, want: Info{AvatarID: "Wayne_20240711", IdleTimeout: 120 * time.Second, Paid: true}},
		{name: "trial plan", acct: Account{Name: "t", Plan: trialPlan}, want: Info{AvatarID: "Wayne_20240711", IdleTimeout: 120 * time.Second, DurationLimit: 600 * time.Second}},
		{name: "idle 30 s", acct: acme, opts: CreateOptions{IdleTimeout: 30 * time.Second}, want: Info{AvatarID: "Wayne_20240711", IdleTimeout: 30 * time.Second, Paid: true}},
		{name: "idle 3600 s, disabled", acct: acme, opts: CreateOptions{IdleTimeout: time.Hour, DisableIdleTimeout: true}, want: Info{AvatarID: "Wayne_20240711", IdleTimeout: time.Hour, DisableIdleTimeout: true, Paid: true}},
		{name: "own private avatar", acct: acme, opts: CreateOptions{AvatarID: "acme_private"}, want: Info{AvatarID: "acme_private", IdleTimeout: 120 * time.Second, Paid: true}},
		{name: "idle 29 s", acct: acme, opts: CreateOptions{IdleTimeout: 29 * time.Second}, wantCode: sserrors.CodeInvalidParameter},
		{name: "idle 3601 s", acct: acme, opts: CreateOptions{IdleTimeout: 3601 * time.Second}, wantCode: sserrors.CodeInvalidParameter},
		{name: "idle negative", acct: acme, opts: CreateOptions{IdleTimeout: -time.Second}, wantCode: sserrors.CodeInvalidParameter},
		{name: "idle out of range even when disabled", acct: acme, opts: CreateOptions{IdleTimeout: time.Second, DisableIdleTimeout: true}, wantCode: sserrors.CodeInvalidParameter},
		{name: "empty account", acct: Account{Plan: paidPlan}, wantCode: sserrors.CodeInvalidParameter},
		{name: "unknown avatar", acct: acme, opts: CreateOptions{AvatarID: "nobody"}, wantCode: sserrors.CodeStreamingAvatarNotFound},
		{name: "another account's private avatar", acct: Account{Name: "other", Plan: paidPlan}, opts: CreateOptions{AvatarID: "acme_private"}, wantCode: sserrors.CodeAvatarNotAllowed},
		{name: "inactive avatar", acct: acme, opts: CreateOptions{AvatarID: "retired"}, wantCode: sserrors.CodeAvatarNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var refused []sserrors.Code
			var events []Event
			m, lim := newTestManager(t, Config{Hooks: Hooks{
				OnRefused:    func(_ Account, c sserrors.Code) { refused = append(refused, c) },
				OnTransition: func(e Event) { events = append(events, e) },
			}})
			defer closeManager(t, m)
			before := time.Now()
			info, err := m.Create(ctx, tt.acct, tt.opts)
			if tt.wantCode != 0 {
				require.Error(t, err)
				assert.Equal(t, tt.wantCode, codeOf(err))
				assert.Equal(t, Info{}, info)
				assert.Equal(t, []sserrors.Code{tt.wantCode}, refused)
				assert.Empty(t, events, "a refused create changes nothing")
				assert.Equal(t, 0, lim.heldCount(), "a refused create consumes no slot")
				list, _ := m.List(ctx, tt.acct.Name)
				assert.Empty(t, list)
				return
			}
			require.NoError(t, err)
			assert.Empty(t, refused)
			assert.Equal(t, fsm.New, info.State)
			assert.Equal(t, uint64(1), info.Epoch)
			assert.Equal(t, tt.acct.Name, info.Account)
			assert.Equal(t, tt.want.AvatarID, info.AvatarID)
			assert.Equal(t, tt.want.IdleTimeout, info.IdleTimeout)
			assert.Equal(t, tt.want.DisableIdleTimeout, info.DisableIdleTimeout)
			assert.Equal(t, tt.want.Paid, info.Paid)
			assert.Equal(t, tt.want.DurationLimit, info.DurationLimit)
			assert.False(t, info.CreatedAt.Before(before.Truncate(time.Nanosecond).Add(-time.Microsecond)))
			assert.True(t, info.StartedAt.IsZero())
			assert.Len(t, info.ID, 32)
			raw, err := hex.DecodeString(info.ID)
			assert.NoError(t, err)
			assert.Len(t, raw, 16, "128 bits")
			assert.True(t, lim.holds(info.ID))
			require.Len(t, events, 1)
			assert.Equal(t, Event{SessionID: info.ID, Account: tt.acct.Name, From: fsm.Unknown, To: fsm.New, Epoch: 1, At: info.CreatedAt}, events[0])
		})
	}
}

func TestCreateIDsAreDistinct(t *testing.T) {
	m, _ := newTestManager(t, Config{})
	defer closeManager(t, m)
	seen := map[string]bool{}
	for range 200 {
		info, err := m.Create(context.Background(), acme, CreateOptions{})
		require.NoError(t, err)
		assert.False(t, seen[info.ID], "duplicate id")
		seen[info.ID] = true
		_, err = m.Stop(context.Background(), "acme", info.ID)
		require.NoError(t, err)
	}
}

func TestCreateLimits(t *testing.T) {
	ctx := context.Background()
	t.Run("order: trial quota, concurrency, capacity", func(t *testing.T) {
		lim := newFakeLimiter(4)
		m, _ := newTestManager(t, Config{Limiter: lim})
		defer closeManager(t, m)
		trial := Account{Name: "t", Plan: trialPlan}
		for range 3 {
			_, err := m.Create(ctx, trial, CreateOptions{})
			require.NoError(t, err)
		}
		_, err := m.Create(ctx, trial, CreateOptions{})
		assert.Equal(t, sserrors.CodeConcurrentLimitReached, codeOf(err))
		lim.mu.Lock()
		lim.exhausted["t"] = true
		lim.mu.Unlock()
		_, err = m.Create(ctx, trial, CreateOptions{})
		assert.Equal(t, sserrors.CodeTrialLimitReached, codeOf(err))
		_, err = m.Create(ctx, acme, CreateOptions{})
		require.NoError(t, err)
		_, err = m.Create(ctx, acme, CreateOptions{})
		assert.Equal(t, sserrors.CodeSessionFull, codeOf(err))
		e, _ := sserrors.As(err)
		assert.Equal(t, limits.CapacityRetryAfter, e.RetryAfter)
		assert.Equal(t, 4, lim.heldCount())
	})
	t.Run("limiter failure", func(t *testing.T) {
		lim := newFakeLimiter(4)
		lim.failNext = limits.ErrUnavailable.WithCause(errors.New("redis down"))
		var mu sync.Mutex // the release runs in the background
		var ops []LimiterOp
		var opErrs []error
		var refused []sserrors.Code
		m, _ := newTestManager(t, Config{Limiter: lim, Hooks: Hooks{
			OnLimiter: func(op LimiterOp, _ time.Duration, err error) {
				mu.Lock()
				defer mu.Unlock()
				ops = append(ops, op)
				opErrs = append(opErrs, err)
			},
			OnRefused: func(_ Account, c sserrors.Code) { refused = append(refused, c) },
		}})
		_, err := m.Create(ctx, acme, CreateOptions{})
		assert.ErrorIs(t, err, limits.ErrUnavailable)
		assert.Equal(t, 503, sserrors.StatusOf(err))
		assert.Equal(t, []sserrors.Code{sserrors.CodeAPIConnectionError}, refused)
		list, _ := m.List(ctx, "acme")
		assert.Empty(t, list)
		closeManager(t, m) // waits for the background release
		// The acquire's outcome is unknown (its answer may be what was
		// lost), so the slot is given back: harmless when never granted.
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []LimiterOp{LimiterAcquire, LimiterRelease}, ops)
		assert.ErrorIs(t, opErrs[0], limits.ErrUnavailable)
	})
	t.Run("cancelled context", func(t *testing.T) {
		m, lim := newTestManager(t, Config{})
		defer closeManager(t, m)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := m.Create(cctx, acme, CreateOptions{})
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 0, lim.heldCount())
	})
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	for _, acct := range []Account{acme, {Name: "t", Plan: trialPlan}} {
		t.Run(acct.Plan.Name, func(t *testing.T) {
			var ops []LimiterOp
			var mu sync.Mutex
			m, lim := newTestManager(t, Config{Hooks: Hooks{OnLimiter: func(op LimiterOp, _ time.Duration, err error) {
				assert.NoError(t, err)
				mu.Lock()
				ops = append(ops, op)
				mu.Unlock()
			}}})
			defer closeManager(t, m)
			var log eventLog
			cancel := m.Subscribe(log.add)
			defer cancel()

			s, err := m.Create(ctx, acct, CreateOptions{})
			require.NoError(t, err)
			id := s.ID
			s, err = m.Start(ctx, acct.Name, id)
			require.NoError(t, err)
			assert.Equal(t, fsm.Connecting, s.State)
			assert.Equal(t, uint64(2), s.Epoch)
			assert.False(t, s.StartedAt.IsZero())
			s, err = m.Join(ctx, acct.Name, id)
			require.NoError(t, err)
			assert.Equal(t, fsm.Connected, s.State)
			assert.Equal(t, uint64(3), s.Epoch)
			assert.False(t, s.LastActivity.IsZero())
			for _, cmd := range []fsm.Command{fsm.CmdTask, fsm.CmdInterrupt, fsm.CmdKeepAlive, fsm.CmdStartListening, fsm.CmdStopListening} {
				got, err := m.Command(ctx, acct.Name, id, cmd)
				require.NoError(t, err, cmd)
				assert.Equal(t, fsm.Connected, got.State)
				assert.Equal(t, uint64(3), got.Epoch, "a command is not a transition")
			}
			require.NoError(t, m.Touch(ctx, acct.Name, id))
			s, err = m.Stop(ctx, acct.Name, id)
			require.NoError(t, err)
			assert.Equal(t, fsm.Closed, s.State)
			assert.Equal(t, uint64(5), s.Epoch)
			assert.Equal(t, ReasonStop, s.Reason)
			assert.False(t, s.ClosedAt.IsZero())
			assert.False(t, lim.holds(id))
			assert.Equal(t, 1, lim.releaseCount(id))

			got, err := m.Get(ctx, acct.Name, id)
			require.NoError(t, err)
			assert.Equal(t, s, got)

			closeManager(t, m)
			mu.Lock()
			defer mu.Unlock()
			if acct.Plan.Trial {
				assert.Equal(t, []LimiterOp{LimiterAcquire, LimiterStarted, LimiterRelease}, ops)
			} else {
				assert.Equal(t, []LimiterOp{LimiterAcquire, LimiterRelease}, ops, "a paid session's minutes are not counted")
			}
			var states []fsm.State
			for i, e := range log.of(id) {
				assert.Equal(t, uint64(i+1), e.Epoch)
				states = append(states, e.To)
			}
			assert.Equal(t, []fsm.State{fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed}, states)
		})
	}
}

func TestJoinOnConnectedIsActivity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m, _ := newTestManager(t, Config{})
		defer closeManager(t, m)
		s, _ := m.Create(ctx, acme, CreateOptions{})
		_, _ = m.Start(ctx, "acme", s.ID)
		first, err := m.Join(ctx, "acme", s.ID)
		require.NoError(t, err)
		time.Sleep(time.Minute)
		again, err := m.Join(ctx, "acme", s.ID)
		require.NoError(t, err, "a reconnecting socket")
		assert.Equal(t, fsm.Connected, again.State)
		assert.Equal(t, first.Epoch, again.Epoch)
		assert.Equal(t, first.LastActivity.Add(time.Minute), again.LastActivity)
	})
}

func TestTenancy(t *testing.T) {
	ctx := context.Background()
	m, lim := newTestManager(t, Config{})
	defer closeManager(t, m)
	s, err := m.Create(ctx, acme, CreateOptions{})
	require.NoError(t, err)
	_, err = m.Start(ctx, "acme", s.ID)
	require.NoError(t, err)

	calls := map[string]func(account, id string) error{
		"get":   func(a, id string) error { _, err := m.Get(ctx, a, id); return err },
		"start": func(a, id string) error { _, err := m.Start(ctx, a, id); return err },
		"join":  func(a, id string) error { _, err := m.Join(ctx, a, id); return err },
		"touch": func(a, id string) error { return m.Touch(ctx, a, id) },
		"stop":  func(a, id string) error { _, err := m.Stop(ctx, a, id); return err },
	}
	for _, cmd := range fsm.Commands() {
		calls["command "+cmd.String()] = func(a, id string) error { _, err := m.Command(ctx, a, id, cmd); return err }
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			foreign := call("intruder", s.ID)
			unknown := call("acme", "00000000000000000000000000000000")
			require.Error(t, foreign)
			assert.Equal(t, unknown, foreign, "another account's session answers exactly what an unknown id does")
			assert.Equal(t, sserrors.CodeSessionNotFound, codeOf(foreign))
			got, err := m.Get(ctx, "acme", s.ID)
			require.NoError(t, err)
			assert.Equal(t, fsm.Connecting, got.State, "nothing changed")
			assert.Equal(t, uint64(2), got.Epoch)
		})
	}
	list, err := m.List(ctx, "intruder")
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.True(t, lim.holds(s.ID))
}

func TestList(t *testing.T) {
	ctx := context.Background()
	m, _ := newTestManager(t, Config{})
	defer closeManager(t, m)
	var ids []string
	for range 5 {
		s, err := m.Create(ctx, acme, CreateOptions{})
		require.NoError(t, err)
		ids = append(ids, s.ID)
	}
	_, err := m.Create(ctx, Account{Name: "other", Plan: paidPlan}, CreateOptions{})
	require.NoError(t, err)
	_, _ = m.Start(ctx, "acme", ids[1])
	_, _ = m.Start(ctx, "acme", ids[2])
	_, _ = m.Join(ctx, "acme", ids[2])
	_, _ = m.Stop(ctx, "acme", ids[3])

	list, err := m.List(ctx, "acme")
	require.NoError(t, err)
	var got []string
	var states []fsm.State
	for _, s := range list {
		got = append(got, s.ID)
		states = append(states, s.State)
		assert.Equal(t, "acme", s.Account)
	}
	assert.Equal(t, []string{ids[0], ids[1], ids[2], ids[4]}, got, "open sessions, oldest first")
	assert.Equal(t, []fsm.State{fsm.New, fsm.Connecting, fsm.Connected, fsm.New}, states)
}

func TestCommandOutsideEnum(t *testing.T) {
	m, _ := newTestManager(t, Config{})
	defer closeManager(t, m)
	s, _ := m.Create(context.Background(), acme, CreateOptions{})
	for _, cmd := range []fsm.Command{0, 99, -1} {
		_, err := m.Command(context.Background(), "acme", s.ID, cmd)
		assert.Equal(t, sserrors.CodeInvalidParameter, codeOf(err), cmd)
	}
	got, _ := m.Get(context.Background(), "acme", s.ID)
	assert.Equal(t, uint64(1), got.Epoch)
}

func TestStopWithCancelledContextAfterClosingCompletes(t *testing.T) {
	// A Stop whose ctx is already done changes nothing.
	m, lim := newTestManager(t, Config{})
	defer closeManager(t, m)
	s, _ := m.Create(context.Background(), acme, CreateOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := m.Stop(ctx, "acme", s.ID)
	assert.ErrorIs(t, err, context.Canceled)
	got, _ := m.Get(context.Background(), "acme", s.ID)
	assert.Equal(t, fsm.New, got.State)
	assert.True(t, lim.holds(s.ID))
}

// conflictStore makes the first conflicts Transitions of a MemoryStore lose
// a race, as a distributed store's compare-and-set can.
type conflictStore struct {
	*MemoryStore
	mu        sync.Mutex
	conflicts int
	calls     int
}

func (s *conflictStore) Transition(ctx context.Context, account, id string, ch Change) (Record, fsm.State, error) {
	s.mu.Lock()
	s.calls++
	lose := s.conflicts > 0
	if lose {
		s.conflicts--
	}
	s.mu.Unlock()
	if lose {
		rec, _ := s.MemoryStore.Get(ctx, account, id)
		return rec, rec.State, ErrConflict
	}
	return s.MemoryStore.Transition(ctx, account, id, ch)
}

func TestManagerRetriesConflicts(t *testing.T) {
	ctx := context.Background()
	t.Run("settles", func(t *testing.T) {
		store := &conflictStore{MemoryStore: NewMemoryStore(MemoryStoreConfig{})}
		m, lim := newTestManager(t, Config{Store: store})
		defer closeManager(t, m)
		s, _ := m.Create(ctx, acme, CreateOptions{})
		store.mu.Lock()
		store.conflicts, store.calls = 3, 0
		store.mu.Unlock()
		got, err := m.Start(ctx, "acme", s.ID)
		require.NoError(t, err)
		assert.Equal(t, fsm.Connecting, got.State)
		assert.Equal(t, 4, store.calls)
		assert.True(t, lim.holds(s.ID))
	})
	t.Run("gives up", func(t *testing.T) {
		store := &conflictStore{MemoryStore: NewMemoryStore(MemoryStoreConfig{})}
		m, _ := newTestManager(t, Config{Store: store})
		defer closeManager(t, m)
		s, _ := m.Create(ctx, acme, CreateOptions{})
		store.mu.Lock()
		store.conflicts = 1000
		store.mu.Unlock()
		_, err := m.Start(ctx, "acme", s.ID)
		assert.ErrorIs(t, err, ErrConflict)
		assert.Equal(t, sserrors.CodeInternalServerError, codeOf(err))
		store.mu.Lock()
		store.conflicts = 0
		store.mu.Unlock()
		got, _ := m.Get(ctx, "acme", s.ID)
		assert.Equal(t, fsm.New, got.State)
	})
}

func TestReasonAndTimeoutStrings(t *testing.T) {
	assert.Equal(t, "stop", ReasonStop.String())
	assert.Equal(t, "lease_lost", ReasonLeaseLost.String())
	assert.Equal(t, "Reason(42)", Reason(42).String())
	assert.Equal(t, "Reason(-1)", Reason(-1).String())
	assert.Equal(t, "idle", TimeoutIdle.String())
	assert.Equal(t, "Timeout(9)", Timeout(9).String())
	assert.Equal(t, "release", LimiterRelease.String())
	assert.Equal(t, "LimiterOp(0)", LimiterOp(0).String())
	assert.Equal(t, ReasonIdle, TimeoutIdle.Reason())
	assert.Equal(t, ReasonNone, TimeoutRetention.Reason())
}
