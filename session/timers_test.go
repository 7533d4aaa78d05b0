package session

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// advance sleeps d of the bubble's fake time and waits until every
// goroutine of the bubble (the timer loop included) is blocked again, so
// that all timers due by then have fired.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// assertOpen checks that the session is in state s and holds its slot.
func assertOpen(t *testing.T, m *Manager, lim *fakeLimiter, id string, s fsm.State) {
	t.Helper()
	got, err := m.Get(context.Background(), "acme", id)
	require.NoError(t, err)
	assert.Equal(t, s, got.State)
	assert.True(t, lim.holds(id), "the slot is held")
}

// assertClosedAt checks that the session closed at exactly at for reason,
// and that its slot was released at that same instant, once.
func assertClosedAt(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog, id string, at time.Time, reason Reason) {
	t.Helper()
	got, err := m.Get(context.Background(), "acme", id)
	require.NoError(t, err)
	assert.Equal(t, fsm.Closed, got.State)
	assert.Equal(t, reason, got.Reason)
	assert.True(t, at.Equal(got.ClosedAt), "closed at %v, want %v", got.ClosedAt, at)
	assert.False(t, lim.holds(id), "the slot is free")
	assert.Equal(t, 1, lim.releaseCount(id))
	assert.True(t, at.Equal(lim.releasedAt(id)), "released at %v, want %v", lim.releasedAt(id), at)
	evs := log.of(id)
	require.GreaterOrEqual(t, len(evs), 2)
	closing, closed := evs[len(evs)-2], evs[len(evs)-1]
	assert.Equal(t, fsm.Closing, closing.To)
	assert.Equal(t, fsm.Closed, closed.To)
	assert.Equal(t, reason, closing.Reason)
	assert.True(t, at.Equal(closed.At))
}

// timerTest runs f in a synctest bubble with a fresh Manager (a fake
// limiter, an event log), and closes the Manager afterwards.
func timerTest(t *testing.T, cfg Config, f func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog)) {
	synctest.Test(t, func(t *testing.T) {
		m, lim := newTestManager(t, cfg)
		log := &eventLog{}
		cancel := m.Subscribe(log.add)
		f(t, m, lim, log)
		synctest.Wait()
		cancel()
		closeManager(t, m)
	})
}

func connected(t *testing.T, m *Manager, acct Account, opts CreateOptions) Info {
	t.Helper()
	ctx := context.Background()
	s, err := m.Create(ctx, acct, opts)
	require.NoError(t, err)
	_, err = m.Start(ctx, acct.Name, s.ID)
	require.NoError(t, err)
	s, err = m.Join(ctx, acct.Name, s.ID)
	require.NoError(t, err)
	return s
}

func TestIdleTimeout(t *testing.T) {
	ctx := context.Background()
	activities := map[string]func(m *Manager, id string) error{
		"keep_alive": func(m *Manager, id string) error { _, err := m.Command(ctx, "acme", id, fsm.CmdKeepAlive); return err },
		"task":       func(m *Manager, id string) error { _, err := m.Command(ctx, "acme", id, fsm.CmdTask); return err },
		"interrupt":  func(m *Manager, id string) error { _, err := m.Command(ctx, "acme", id, fsm.CmdInterrupt); return err },
		"touch":      func(m *Manager, id string) error { return m.Touch(ctx, "acme", id) },
		"rejoin":     func(m *Manager, id string) error { _, err := m.Join(ctx, "acme", id); return err },
	}
	t.Run("fires at exactly the idle timeout", func(t *testing.T) {
		timerTest(t, Config{}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
			s := connected(t, m, acme, CreateOptions{IdleTimeout: 45 * time.Second})
			advance(45*time.Second - time.Nanosecond)
			assertOpen(t, m, lim, s.ID, fsm.Connected)
			advance(time.Nanosecond)
			assertClosedAt(t, m, lim, log, s.ID, s.LastActivity.Add(45*time.Second), ReasonIdle)
		})
	})
	for name, act := range activities {
		t.Run("reset by "+name, func(t *testing.T) {
			timerTest(t, Config{}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
				s := connected(t, m, acme, CreateOptions{})
				advance(100 * time.Second)
				require.NoError(t, act(m, s.ID))
				last := s.LastActivity.Add(100 * time.Second)
				advance(119 * time.Second) // past the first deadline (120 s)
				assertOpen(t, m, lim, s.ID, fsm.Connected)
				advance(time.Second - time.Nanosecond)
				assertOpen(t, m, lim, s.ID, fsm.Connected)
				advance(time.Nanosecond)
				assertClosedAt(t, m, lim, log, s.ID, last.Add(DefaultIdleTimeout), ReasonIdle)
			})
		})
	}
	t.Run("not reset by ice or listening", func(t *testing.T) {
		timerTest(t, Config{}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
			s := connected(t, m, acme, CreateOptions{})
			advance(100 * time.Second)
			for _, cmd := range []fsm.Command{fsm.CmdStartListening, fsm.CmdStopListening} {
				_, err := m.Command(ctx, "acme", s.ID, cmd)
				require.NoError(t, err)
			}
			advance(20 * time.Second)
			assertClosedAt(t, m, lim, log, s.ID, s.LastActivity.Add(DefaultIdleTimeout), ReasonIdle)
		})
	})
	t.Run("disabled", func(t *testing.T) {
		timerTest(t, Config{}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
			s := connected(t, m, acme, CreateOptions{DisableIdleTimeout: true})
			advance(24 * time.Hour)
			assertOpen(t, m, lim, s.ID, fsm.Connected)
		})
	})
	t.Run("only counts once connected", func(t *testing.T) {
		timerTest(t, Config{}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
			s, _ := m.Create(ctx, acme, CreateOptions{IdleTimeout: 30 * time.Second})
			_, _ = m.Start(ctx, "acme", s.ID)
			advance(time.Minute)
			assertOpen(t, m, lim, s.ID, fsm.Connecting)
		})
	})
}

func TestDurationLimit(t *testing.T) {
	ctx := context.Background()
	timerTest(t, Config{}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
		trial := Account{Name: "acme", Plan: trialPlan}
		s, err := m.Create(ctx, trial, CreateOptions{})
		require.NoError(t, err)
		advance(10 * time.Second) // the limit counts from start, not creation
		started, err := m.Start(ctx, "acme", s.ID)
		require.NoError(t, err)
		_, err = m.Join(ctx, "acme", s.ID)
		require.NoError(t, err)
		for range 5 { // keep it from idling out
			advance(100 * time.Second)
			_, err = m.Command(ctx, "acme", s.ID, fsm.CmdKeepAlive)
			require.NoError(t, err)
		}
		advance(100*time.Second - time.Nanosecond)
		assertOpen(t, m, lim, s.ID, fsm.Connected)
		advance(time.Nanosecond)
		assertClosedAt(t, m, lim, log, s.ID, started.StartedAt.Add(600*time.Second), ReasonDuration)
	})
}

func TestJoinTimeout(t *testing.T) {
	ctx := context.Background()
	for _, state := range []fsm.State{fsm.New, fsm.Connecting} {
		t.Run("still "+state.String(), func(t *testing.T) {
			timerTest(t, Config{}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
				s, err := m.Create(ctx, acme, CreateOptions{})
				require.NoError(t, err)
				if state == fsm.Connecting {
					advance(4 * time.Minute) // counted from creation, not start
					_, err = m.Start(ctx, "acme", s.ID)
					require.NoError(t, err)
					advance(time.Minute - time.Nanosecond)
				} else {
					advance(5*time.Minute - time.Nanosecond)
				}
				assertOpen(t, m, lim, s.ID, state)
				advance(time.Nanosecond)
				assertClosedAt(t, m, lim, log, s.ID, s.CreatedAt.Add(DefaultJoinTimeout), ReasonJoin)
			})
		})
	}
	t.Run("configured", func(t *testing.T) {
		timerTest(t, Config{JoinTimeout: 10 * time.Second}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
			s, _ := m.Create(ctx, acme, CreateOptions{})
			advance(10 * time.Second)
			assertClosedAt(t, m, lim, log, s.ID, s.CreatedAt.Add(10*time.Second), ReasonJoin)
		})
	})
	t.Run("not once connected", func(t *testing.T) {
		timerTest(t, Config{}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
			s := connected(t, m, acme, CreateOptions{DisableIdleTimeout: true})
			advance(time.Hour)
			assertOpen(t, m, lim, s.ID, fsm.Connected)
		})
	})
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	for _, retention := range []time.Duration{0, 30 * time.Second} {
		want := retention
		if want == 0 {
			want = DefaultRetention
		}
		t.Run(want.String(), func(t *testing.T) {
			timerTest(t, Config{Retention: retention}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
				s, _ := m.Create(ctx, acme, CreateOptions{})
				advance(time.Second)
				closed, err := m.Stop(ctx, "acme", s.ID)
				require.NoError(t, err)
				advance(want - time.Nanosecond)
				_, err = m.Start(ctx, "acme", s.ID)
				assert.Equal(t, sserrors.CodeSessionStateClosed, codeOf(err))
				got, err := m.Get(ctx, "acme", s.ID)
				require.NoError(t, err)
				assert.Equal(t, fsm.Closed, got.State)
				advance(time.Nanosecond)
				_, err = m.Get(ctx, "acme", s.ID)
				assert.Equal(t, sserrors.CodeSessionNotFound, codeOf(err))
				_, err = m.Stop(ctx, "acme", s.ID)
				assert.Equal(t, sserrors.CodeSessionNotFound, codeOf(err))
				evs := log.of(s.ID)
				last := evs[len(evs)-1]
				assert.True(t, last.Forgotten())
				assert.Equal(t, Event{SessionID: s.ID, Account: "acme", From: fsm.Closed, To: fsm.Unknown, Epoch: 4, At: closed.ClosedAt.Add(want), Reason: ReasonStop}, last)
			})
		})
	}
}

func TestTimersLeaveNoHeapGarbage(t *testing.T) {
	// Many sessions through their timers: afterwards the store holds
	// nothing, and the heap only stale-free entries.
	timerTest(t, Config{JoinTimeout: time.Minute, Retention: time.Minute}, func(t *testing.T, m *Manager, lim *fakeLimiter, log *eventLog) {
		ctx := context.Background()
		for i := range 300 {
			s, err := m.Create(ctx, acme, CreateOptions{IdleTimeout: 30 * time.Second})
			require.NoError(t, err)
			switch i % 3 {
			case 1:
				_, _ = m.Start(ctx, "acme", s.ID)
			case 2:
				_, _ = m.Start(ctx, "acme", s.ID)
				_, _ = m.Join(ctx, "acme", s.ID)
			}
			advance(time.Second)
		}
		advance(10 * time.Minute)
		assert.Equal(t, 0, lim.heldCount())
		store := m.store.(*MemoryStore)
		for i := range store.shards {
			sh := &store.shards[i]
			sh.mu.Lock()
			assert.Empty(t, sh.sessions)
			assert.Empty(t, sh.accounts)
			assert.Empty(t, sh.timers)
			sh.mu.Unlock()
		}
	})
}

// manualClock is a Clock moved by hand, to show that the manager's time is
// injectable without testing/synctest.
type manualClock struct {
	mu     chan struct{} // a one-slot lock usable with select
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	c     chan time.Time
	at    time.Time
	armed bool
	clk   *manualClock
}

func newManualClock(t0 time.Time) *manualClock {
	c := &manualClock{mu: make(chan struct{}, 1), now: t0}
	return c
}

func (c *manualClock) lock()   { c.mu <- struct{}{} }
func (c *manualClock) unlock() { <-c.mu }

func (c *manualClock) Now() time.Time {
	c.lock()
	defer c.unlock()
	return c.now
}

func (c *manualClock) NewTimer(d time.Duration) Timer {
	c.lock()
	defer c.unlock()
	t := &manualTimer{c: make(chan time.Time, 1), at: c.now.Add(d), armed: true, clk: c}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock and fires the timers due.
func (c *manualClock) Advance(d time.Duration) {
	c.lock()
	defer c.unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.armed && !t.at.After(c.now) {
			t.armed = false
			select {
			case t.c <- c.now:
			default:
			}
		}
	}
}

func (t *manualTimer) C() <-chan time.Time { return t.c }
func (t *manualTimer) Reset(d time.Duration) bool {
	t.clk.lock()
	defer t.clk.unlock()
	was := t.armed
	select {
	case <-t.c:
	default:
	}
	t.at, t.armed = t.clk.now.Add(d), true
	if d <= 0 {
		t.armed = false
		t.c <- t.clk.now
	}
	return was
}
func (t *manualTimer) Stop() bool {
	t.clk.lock()
	defer t.clk.unlock()
	was := t.armed
	t.armed = false
	select {
	case <-t.c:
	default:
	}
	return was
}

func TestInjectedClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble only serves to wait for the timer loop; the manager's
		// time is the manual clock's (far from the bubble's).
		clk := newManualClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
		m, lim := newTestManager(t, Config{Clock: clk, JoinTimeout: time.Minute})
		defer closeManager(t, m)
		s, err := m.Create(context.Background(), acme, CreateOptions{})
		require.NoError(t, err)
		assert.Equal(t, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), s.CreatedAt)
		synctest.Wait()
		clk.Advance(time.Minute - time.Nanosecond)
		synctest.Wait()
		assert.True(t, lim.holds(s.ID))
		clk.Advance(time.Nanosecond)
		synctest.Wait()
		got, _ := m.Get(context.Background(), "acme", s.ID)
		assert.Equal(t, fsm.Closed, got.State)
		assert.Equal(t, ReasonJoin, got.Reason)
		assert.Equal(t, s.CreatedAt.Add(time.Minute), got.ClosedAt)
		assert.False(t, lim.holds(s.ID))
	})
}

func TestLeaseRenewal(t *testing.T) {
	ctx := context.Background()
	t.Run("a third of the lease lifetime", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := newFakeLimiter(10)
			lim.ttl = 30 * time.Second
			m, _ := newTestManager(t, Config{Limiter: lim})
			defer closeManager(t, m)
			a := connected(t, m, acme, CreateOptions{DisableIdleTimeout: true})
			b, _ := m.Create(ctx, acme, CreateOptions{})
			_ = b
			advance(10*time.Second - time.Nanosecond)
			lim.mu.Lock()
			assert.Equal(t, 0, lim.renewals)
			lim.mu.Unlock()
			advance(time.Nanosecond)
			lim.mu.Lock()
			assert.Equal(t, 2, lim.renewals, "one renewal per open session")
			lim.expire[a.ID] = true
			lim.mu.Unlock()
			advance(10 * time.Second)
			got, _ := m.Get(ctx, "acme", a.ID)
			assert.Equal(t, fsm.Closed, got.State, "a lost lease closes its session")
			assert.Equal(t, ReasonLeaseLost, got.Reason)
			assert.Equal(t, 1, lim.releaseCount(a.ID))
			got, _ = m.Get(ctx, "acme", b.ID)
			assert.Equal(t, fsm.New, got.State)
		})
	})
	t.Run("configured interval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := newFakeLimiter(10)
			m, _ := newTestManager(t, Config{Limiter: lim, LeaseRenewInterval: 7 * time.Second})
			defer closeManager(t, m)
			_, _ = m.Create(ctx, acme, CreateOptions{})
			advance(21 * time.Second)
			lim.mu.Lock()
			assert.Equal(t, 3, lim.renewals)
			lim.mu.Unlock()
		})
	})
	t.Run("a backend failure leaves sessions running", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := &failingRenewLimiter{fakeLimiter: newFakeLimiter(10)}
			m, _ := newTestManager(t, Config{Limiter: lim, LeaseRenewInterval: time.Second})
			defer closeManager(t, m)
			s, _ := m.Create(ctx, acme, CreateOptions{})
			advance(5 * time.Second)
			got, _ := m.Get(ctx, "acme", s.ID)
			assert.Equal(t, fsm.New, got.State)
		})
	})
}

type failingRenewLimiter struct{ *fakeLimiter }

func (l *failingRenewLimiter) Renew(context.Context, limitsLease) (limitsLease, error) {
	return limitsLease{}, errUnavailableForTest
}
