package limits_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/limitertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestMemoryConformance(t *testing.T) {
	for _, c := range []struct {
		name  string
		sweep time.Duration
	}{
		{"default sweeper", 0},
		{"no sweeper", -1},
		// A sweeper running all the time must not change any decision.
		{"busy sweeper", time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			limitertest.Run(t, func(t *testing.T, cfg limitertest.Config) limitertest.Harness {
				clock := limitertest.NewClock(cfg.Start)
				m := limits.NewMemory(limits.MemoryConfig{
					Capacity:      cfg.Capacity,
					LeaseTTL:      cfg.LeaseTTL,
					Now:           clock.Now,
					SweepInterval: c.sweep,
				})
				return limitertest.Harness{Limiter: m, Advance: clock.Advance}
			})
		})
	}
}

var (
	bg    = context.Background()
	paid  = limits.Plan{Name: "p", MaxConcurrent: 100}
	trial = limits.Plan{Name: "t", Trial: true, MonthlyMinutes: 10, MaxConcurrent: 3}
)

func newTestMemory(t *testing.T, cfg limits.MemoryConfig, start time.Time) (*limits.Memory, *limitertest.Clock) {
	t.Helper()
	clock := limitertest.NewClock(start)
	cfg.Now = clock.Now
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = -1 // tests call Sweep themselves
	}
	m := limits.NewMemory(cfg)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m, clock
}

func grant(t *testing.T, m *limits.Memory, account string, plan limits.Plan, id string) limits.Lease {
	t.Helper()
	d, err := m.Acquire(bg, limits.Request{Account: account, Plan: plan, SessionID: id})
	require.NoError(t, err)
	require.Equal(t, limits.NoLimit, d.Refused, "Acquire(%s, %s)", account, id)
	return d.Lease
}

var start = time.Date(2030, time.June, 10, 8, 0, 0, 0, time.UTC)

func TestMemoryDefaults(t *testing.T) {
	m, _ := newTestMemory(t, limits.MemoryConfig{}, start)
	l := grant(t, m, "a", paid, "s")
	assert.Equal(t, start.Add(limits.DefaultLeaseTTL), l.Expires, "Expires with the default LeaseTTL")
	// Capacity 0 is unlimited; the slots are counted across the shards.
	leases := make([]limits.Lease, 1000)
	for i := range leases {
		leases[i] = grant(t, m, fmt.Sprint("acct", i), paid, "s")
	}
	assert.Equal(t, 1001, m.InUse())
	assert.Equal(t, 1001, m.Accounts())
	for _, l := range leases[:400] {
		require.NoError(t, m.Release(bg, l))
		require.NoError(t, m.Release(bg, l), "a second release frees nothing more")
	}
	assert.Equal(t, 601, m.InUse())
}

func TestMemoryNegativeConfigIsZero(t *testing.T) {
	m, clock := newTestMemory(t, limits.MemoryConfig{Capacity: -3, LeaseTTL: -time.Second}, start)
	l := grant(t, m, "a", paid, "s") // capacity -3 is unlimited
	assert.Equal(t, start, l.Expires, "a lease with a zero TTL expires at once")
	_, err := m.Renew(bg, l)
	require.ErrorIs(t, err, limits.ErrLeaseExpired)
	clock.Advance(time.Nanosecond)
	assert.Equal(t, 0, m.InUse(), "the expired lease was reclaimed by Renew")
}

func TestMemorySweep(t *testing.T) {
	m, clock := newTestMemory(t, limits.MemoryConfig{LeaseTTL: time.Hour}, start)

	held := grant(t, m, "holding", paid, "s1")
	done := grant(t, m, "paid-idle", paid, "s2")
	require.NoError(t, m.Release(bg, done))
	counted := grant(t, m, "trial-used", trial, "s3")
	require.NoError(t, m.Started(bg, counted))
	clock.Advance(time.Minute)
	require.NoError(t, m.Release(bg, counted))
	never := grant(t, m, "trial-unstarted", trial, "s4")
	require.NoError(t, m.Release(bg, never))
	assert.Equal(t, 4, m.Accounts())

	m.Sweep()
	assert.Equal(t, 2, m.Accounts(), "idle accounts without minutes this month are forgotten")
	assert.Equal(t, 1, m.InUse())

	// Forgetting an account must not forget its minutes: the trial account
	// still has its minute.
	trial1 := limits.Plan{Name: "t1", Trial: true, MonthlyMinutes: 1, MaxConcurrent: 3}
	d, err := m.Acquire(bg, limits.Request{Account: "trial-used", Plan: trial1, SessionID: "s5"})
	require.NoError(t, err)
	assert.Equal(t, limits.TrialQuota, d.Refused)

	// A new month forgets last month's minutes, and expired leases are
	// reclaimed by the sweep.
	clock.Advance(40 * 24 * time.Hour)
	m.Sweep()
	assert.Equal(t, 0, m.Accounts())
	assert.Equal(t, 0, m.InUse())
	_, err = m.Renew(bg, held)
	require.ErrorIs(t, err, limits.ErrLeaseExpired)
}

func TestMemorySweepManyAccounts(t *testing.T) {
	m, clock := newTestMemory(t, limits.MemoryConfig{LeaseTTL: time.Minute}, start)
	const n = 20_000 // enough for every shard's map to be rebuilt
	for i := range n {
		grant(t, m, fmt.Sprint("a", i), paid, "s")
	}
	assert.Equal(t, n, m.Accounts())
	clock.Advance(time.Minute)
	m.Sweep()
	assert.Equal(t, 0, m.Accounts())
	assert.Equal(t, 0, m.InUse())
	// The limiter works as before after its maps were rebuilt.
	for i := range 1000 {
		grant(t, m, fmt.Sprint("a", i), paid, "s")
	}
	assert.Equal(t, 1000, m.Accounts())
}

func TestMemorySweeperGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Inside the bubble time.Now and the ticker share the fake clock.
		m := limits.NewMemory(limits.MemoryConfig{SweepInterval: time.Minute, LeaseTTL: time.Hour})
		l := grant(t, m, "a", paid, "s")
		require.NoError(t, m.Release(bg, l))
		grant(t, m, "b", paid, "s")
		assert.Equal(t, 2, m.Accounts())

		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		assert.Equal(t, 1, m.Accounts(), "the sweeper forgot the idle account")

		time.Sleep(time.Hour)
		synctest.Wait()
		assert.Equal(t, 0, m.Accounts(), "the sweeper reclaimed the expired lease")
		assert.Equal(t, 0, m.InUse())

		// Close stops the sweeper: synctest.Test fails if a goroutine of
		// the bubble is left blocked.
		require.NoError(t, m.Close())
		require.NoError(t, m.Close(), "closing twice")
	})
}

func TestMemoryCloseStopsGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	m := limits.NewMemory(limits.MemoryConfig{SweepInterval: time.Millisecond})
	grant(t, m, "a", paid, "s")
	require.NoError(t, m.Close())
	goleak.VerifyNone(t, before)
	// The limiter still answers after Close.
	grant(t, m, "a", paid, "s2")
}

func TestMemoryLargeAccount(t *testing.T) {
	// An account with more slots than the linear search keeps switches to
	// an index and back; every slot must stay findable.
	m, clock := newTestMemory(t, limits.MemoryConfig{Capacity: 500, LeaseTTL: time.Minute}, start)
	plan := limits.Plan{Name: "big", MaxConcurrent: 200}
	leases := make([]limits.Lease, 200)
	for i := range leases {
		leases[i] = grant(t, m, "big", plan, fmt.Sprint("s", i))
	}
	d, err := m.Acquire(bg, limits.Request{Account: "big", Plan: plan, SessionID: "over"})
	require.NoError(t, err)
	assert.Equal(t, limits.Concurrency, d.Refused)
	// Release every other one, from the middle out, then renew the rest.
	for i := 1; i < len(leases); i += 2 {
		require.NoError(t, m.Release(bg, leases[i]))
	}
	assert.Equal(t, 100, m.InUse())
	clock.Advance(30 * time.Second)
	for i := 0; i < len(leases); i += 2 {
		_, err := m.Renew(bg, leases[i])
		require.NoError(t, err, "Renew(s%d)", i)
		// Acquiring again takes no second slot.
		grant(t, m, "big", plan, leases[i].SessionID)
	}
	assert.Equal(t, 100, m.InUse())
	for i := 1; i < len(leases); i += 2 {
		_, err := m.Renew(bg, leases[i])
		require.ErrorIs(t, err, limits.ErrLeaseExpired, "Renew(s%d) after release", i)
	}
	// Down to a handful (the index is dropped), then expire the rest.
	for i := 0; i < 190; i += 2 {
		require.NoError(t, m.Release(bg, leases[i]))
	}
	assert.Equal(t, 5, m.InUse())
	for i := 190; i < 200; i += 2 {
		_, err := m.Renew(bg, leases[i])
		require.NoError(t, err)
	}
	clock.Advance(time.Minute)
	grant(t, m, "big", plan, "after")
	d, err = m.Acquire(bg, limits.Request{Account: "other", Plan: plan, SessionID: "x"})
	require.NoError(t, err)
	assert.True(t, d.Granted())
	m.Sweep()
	assert.Equal(t, 2, m.InUse())
}

func TestMemoryStartedOnMissingLease(t *testing.T) {
	m, _ := newTestMemory(t, limits.MemoryConfig{}, start)
	for _, l := range []limits.Lease{{}, {Account: "a", SessionID: "never"}} {
		require.ErrorIs(t, m.Started(bg, l), limits.ErrLeaseExpired, "Started(%+v)", l)
	}
}

func TestMemoryExpiryBoundary(t *testing.T) {
	// A lease is expired from the instant Expires is reached, on every path.
	none := limits.Plan{Name: "none", MaxConcurrent: 0}
	for _, c := range []struct {
		name  string
		check func(t *testing.T, m *limits.Memory, l limits.Lease)
	}{
		{"renew", func(t *testing.T, m *limits.Memory, l limits.Lease) {
			_, err := m.Renew(bg, l)
			require.ErrorIs(t, err, limits.ErrLeaseExpired)
		}},
		{"started", func(t *testing.T, m *limits.Memory, l limits.Lease) {
			require.ErrorIs(t, m.Started(bg, l), limits.ErrLeaseExpired)
		}},
		{"acquire again", func(t *testing.T, m *limits.Memory, l limits.Lease) {
			// With no room, the session's own expired slot is not handed back.
			d, err := m.Acquire(bg, limits.Request{Account: l.Account, Plan: none, SessionID: l.SessionID})
			require.NoError(t, err)
			assert.Equal(t, limits.Concurrency, d.Refused)
		}},
		{"sweep", func(t *testing.T, m *limits.Memory, _ limits.Lease) {
			m.Sweep()
			assert.Equal(t, 0, m.InUse())
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, clock := newTestMemory(t, limits.MemoryConfig{LeaseTTL: time.Minute}, start)
			l := grant(t, m, "a", paid, "s")
			clock.Advance(time.Minute - time.Nanosecond)
			d, err := m.Acquire(bg, limits.Request{Account: "a", Plan: none, SessionID: "s"})
			require.NoError(t, err)
			require.True(t, d.Granted(), "still held a nanosecond before Expires")
			clock.Advance(time.Minute) // renewed by that acquire: now at its new Expires
			assert.Equal(t, clock.Now(), d.Lease.Expires.UTC())
			c.check(t, m, l)
		})
	}
}
