package redislimiter_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

var (
	paid  = limits.Plan{Name: "pro", MaxConcurrent: 2}
	trial = limits.Plan{Name: "trial", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 10}
)

func TestNewRejectsBadConfig(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	for _, tc := range []struct {
		name string
		cfg  redislimiter.Config
	}{
		{"brace in prefix", redislimiter.Config{Prefix: "a{b"}},
		{"closing brace in prefix", redislimiter.Config{Prefix: "a}b"}},
		{"negative capacity", redislimiter.Config{Capacity: -1}},
		{"tiny ttl", redislimiter.Config{LeaseTTL: time.Millisecond}},
		{"negative ttl", redislimiter.Config{LeaseTTL: -time.Second}},
		{"unknown policy", redislimiter.Config{Failure: 7}},
		{"negative batch", redislimiter.Config{PurgeBatch: -1}},
		{"negative flushers", redislimiter.Config{Flushers: -1}},
		{"negative batch size", redislimiter.Config{BatchSize: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := redislimiter.New(client, tc.cfg)
			assert.Nil(t, l)
			assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
		})
	}
	_, err := redislimiter.New(nil, redislimiter.Config{})
	assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
}

func TestNewFillsDefaults(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	l, err := redislimiter.New(client, redislimiter.Config{})
	require.NoError(t, err)
	defer l.Close()
	cfg := l.Config()
	assert.Equal(t, redislimiter.DefaultPrefix, cfg.Prefix)
	assert.Equal(t, redislimiter.DefaultLeaseTTL, cfg.LeaseTTL)
	assert.Equal(t, redislimiter.DefaultFlushers, cfg.Flushers)
	assert.Equal(t, redislimiter.DefaultBatchSize, cfg.BatchSize)
	assert.Equal(t, redislimiter.DefaultPurgeBatch, cfg.PurgeBatch)
	assert.Equal(t, limits.FailClosed, cfg.Failure)
	assert.Equal(t, "fail-closed", cfg.Failure.String())
	assert.Equal(t, "fail-open", limits.FailOpen.String())
}

func TestBadRequestChangesNothing(t *testing.T) {
	r := newRig(t, redislimiter.Config{Capacity: 10}, nil)
	ctx := context.Background()
	long := strings.Repeat("x", 513)
	for _, tc := range []struct {
		name string
		req  limits.Request
	}{
		{"empty account", req("", "s", paid)},
		{"empty session", req("a", "", paid)},
		{"long account", req(long, "s", paid)},
		{"long session", req("a", long, paid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := r.lim.Acquire(ctx, tc.req)
			assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
			assert.False(t, d.Granted() && d.Lease != (limits.Lease{}), "no lease on bad input")
			lease := limits.Lease{Account: tc.req.Account, SessionID: tc.req.SessionID}
			assert.ErrorIs(t, r.lim.Started(ctx, lease), sserrors.ErrInvalidParameter)
			_, err = r.lim.Renew(ctx, lease)
			assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
			assert.ErrorIs(t, r.lim.Release(ctx, lease), sserrors.ErrInvalidParameter)
		})
	}
	n, err := r.admin.DBSize(ctx).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "keys written for bad requests")
	assert.Zero(t, r.hook.commands.Load(), "commands sent for bad requests")
}

func TestPlanConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan limits.Plan
	}{
		{"paid 2", paid},
		{"trial 3", trial},
		{"none", limits.Plan{MaxConcurrent: 0}},
		{"negative is none", limits.Plan{MaxConcurrent: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, redislimiter.Config{}, nil)
			ctx := context.Background()
			for i := range tc.plan.MaxConcurrent {
				d, err := r.lim.Acquire(ctx, req("acct", fmt.Sprint("s", i), tc.plan))
				require.NoError(t, err)
				require.True(t, d.Granted(), "acquire %d refused by %v", i, d.Refused)
				assert.Equal(t, "acct", d.Lease.Account)
				assert.Equal(t, fmt.Sprint("s", i), d.Lease.SessionID)
			}
			d, err := r.lim.Acquire(ctx, req("acct", "one-more", tc.plan))
			require.NoError(t, err)
			assert.Equal(t, limits.Concurrency, d.Refused)
			// Another account is not affected.
			if tc.plan.MaxConcurrent > 0 {
				d, err = r.lim.Acquire(ctx, req("other", "s0", tc.plan))
				require.NoError(t, err)
				assert.True(t, d.Granted())
			}
		})
	}
}

func TestOrderOfChecks(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, redislimiter.Config{Capacity: 1}, nil)
	// Fill the capacity with another account.
	d, err := r.lim.Acquire(ctx, req("filler", "f", paid))
	require.NoError(t, err)
	require.True(t, d.Granted())

	noMinutes := limits.Plan{MaxConcurrent: 0, Trial: true, MonthlyMinutes: 0}
	d, err = r.lim.Acquire(ctx, req("a", "s", noMinutes))
	require.NoError(t, err)
	assert.Equal(t, limits.TrialQuota, d.Refused, "quota before concurrency and capacity")

	d, err = r.lim.Acquire(ctx, req("a", "s", limits.Plan{MaxConcurrent: 0}))
	require.NoError(t, err)
	assert.Equal(t, limits.Concurrency, d.Refused, "concurrency before capacity")

	d, err = r.lim.Acquire(ctx, req("a", "s", paid))
	require.NoError(t, err)
	assert.Equal(t, limits.SessionFull, d.Refused)
	assert.Equal(t, 10014, int(mustCode(t, d.Refused.Err())))
}

func mustCode(t *testing.T, err error) sserrors.Code {
	t.Helper()
	e, ok := sserrors.As(err)
	require.True(t, ok)
	return e.Code
}

func TestSameSessionTakesOneSlot(t *testing.T) {
	ctx := context.Background()
	r := newClockedRig(t, redislimiter.Config{Capacity: 5}, nil)
	first, err := r.lim.Acquire(ctx, req("a", "s", paid))
	require.NoError(t, err)
	require.True(t, first.Granted())
	r.clock.Advance(time.Second)
	again, err := r.lim.Acquire(ctx, req("a", "s", paid))
	require.NoError(t, err)
	require.True(t, again.Granted())
	assert.True(t, again.Lease.Expires.After(first.Lease.Expires), "the slot comes back renewed")
	assert.Equal(t, int64(1), r.admin.ZCard(ctx, r.key("slots", "a")).Val())
	assert.Equal(t, int64(1), r.admin.ZCard(ctx, "{"+r.cfg.Prefix+"}:cap").Val())
	// The same session id under another account is another session.
	d, err := r.lim.Acquire(ctx, req("b", "s", paid))
	require.NoError(t, err)
	require.True(t, d.Granted())
	assert.Equal(t, int64(2), r.admin.ZCard(ctx, "{"+r.cfg.Prefix+"}:cap").Val())
}

// TestExpiredSessionAcquiresAgain: a session whose lease expired unpurged
// acquires again as a new session, and holds a real slot.
func TestExpiredSessionAcquiresAgain(t *testing.T) {
	ctx := context.Background()
	for _, plan := range []limits.Plan{{Name: "one", MaxConcurrent: 1}, {Name: "t1", Trial: true, MonthlyMinutes: 60, MaxConcurrent: 1}} {
		t.Run(plan.Name, func(t *testing.T) {
			r := newClockedRig(t, redislimiter.Config{LeaseTTL: time.Minute, Capacity: 1}, nil)
			r.clock.Freeze(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
			d, err := r.lim.Acquire(ctx, req("a", "s", plan))
			require.NoError(t, err)
			require.True(t, d.Granted())
			require.NoError(t, r.lim.Started(ctx, d.Lease))
			r.clock.Advance(2 * time.Minute)
			again, err := r.lim.Acquire(ctx, req("a", "s", plan))
			require.NoError(t, err)
			require.True(t, again.Granted())
			assert.Equal(t, d.Lease.Expires.Add(2*time.Minute), again.Lease.Expires)
			// It holds the account's only slot and the service's.
			other, err := r.lim.Acquire(ctx, req("a", "t", plan))
			require.NoError(t, err)
			assert.Equal(t, limits.Concurrency, other.Refused)
			other, err = r.lim.Acquire(ctx, req("b", "t", plan))
			require.NoError(t, err)
			assert.Equal(t, limits.SessionFull, other.Refused)
			_, err = r.lim.Renew(ctx, again.Lease)
			require.NoError(t, err)
		})
	}
}

// TestReplayedScriptsCountOnce runs every script twice, as go-redis does when
// the reply of the first run is lost, and checks that nothing counts twice.
func TestReplayedScriptsCountOnce(t *testing.T) {
	ctx := context.Background()
	r := newClockedRig(t, redislimiter.Config{Capacity: 5, LeaseTTL: time.Hour}, nil)
	r.clock.Freeze(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	r.hook.replay.Store(true)
	// Warm the script cache so that each call is exactly two runs.
	for i := range 2 {
		d, err := r.lim.Acquire(ctx, req("a", fmt.Sprint("s", i), trial))
		require.NoError(t, err)
		require.True(t, d.Granted())
		require.NoError(t, r.lim.Started(ctx, d.Lease))
	}
	assert.Equal(t, int64(2), r.admin.ZCard(ctx, r.key("slots", "a")).Val(), "two sessions, two slots")

	d, err := r.lim.Acquire(ctx, req("a", "s0", trial))
	require.NoError(t, err)
	require.True(t, d.Granted())
	assert.Equal(t, int64(2), r.admin.ZCard(ctx, r.key("slots", "a")).Val(), "a replayed acquire takes no second slot")

	r.clock.Advance(3 * time.Minute)
	require.NoError(t, r.lim.Started(ctx, d.Lease), "a replayed Started does not restart the count")
	require.NoError(t, r.lim.Release(ctx, d.Lease))
	require.NoError(t, r.lim.Release(ctx, d.Lease))
	assert.ErrorIs(t, r.lim.Started(ctx, d.Lease), limits.ErrLeaseExpired, "Started after Release counts nothing")
	r.clock.Advance(time.Minute)
	require.NoError(t, r.lim.Release(ctx, d.Lease))

	used, err := r.admin.HGet(ctx, r.key("used", "a"), "202603").Int64()
	require.NoError(t, err)
	assert.Equal(t, (3 * time.Minute).Milliseconds(), used, "minutes of s0 counted once")
	assert.Equal(t, int64(1), r.admin.HLen(ctx, r.key("run", "a")).Val(), "only s1 still counting")
}

func TestTrialMinutes(t *testing.T) {
	ctx := context.Background()
	t.Run("running sessions count", func(t *testing.T) {
		r := newClockedRig(t, redislimiter.Config{LeaseTTL: time.Hour}, nil)
		r.clock.Freeze(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
		d, err := r.lim.Acquire(ctx, req("a", "s1", trial))
		require.NoError(t, err)
		require.NoError(t, r.lim.Started(ctx, d.Lease))
		r.clock.Advance(9 * time.Minute)
		_, err = r.lim.Renew(ctx, d.Lease)
		require.NoError(t, err)
		d2, err := r.lim.Acquire(ctx, req("a", "s2", trial))
		require.NoError(t, err)
		require.True(t, d2.Granted(), "9 of 10 minutes used")
		r.clock.Advance(time.Minute)
		_, err = r.lim.Renew(ctx, d.Lease)
		require.NoError(t, err)
		d3, err := r.lim.Acquire(ctx, req("a", "s3", trial))
		require.NoError(t, err)
		assert.Equal(t, limits.TrialQuota, d3.Refused, "10 of 10 minutes used by a running session")
		// The running session is not cut: it renews.
		_, err = r.lim.Renew(ctx, d.Lease)
		require.NoError(t, err)
		// Paid plans are not held to minutes.
		d4, err := r.lim.Acquire(ctx, req("a", "s4", limits.PaidPlan))
		require.NoError(t, err)
		assert.True(t, d4.Granted())
	})
	t.Run("split at the month boundary", func(t *testing.T) {
		r := newClockedRig(t, redislimiter.Config{LeaseTTL: 6 * time.Minute}, nil)
		r.clock.Freeze(time.Date(2026, 1, 31, 23, 55, 0, 0, time.UTC))
		plan := trial
		plan.MonthlyMinutes = 6
		d, err := r.lim.Acquire(ctx, req("a", "s1", plan))
		require.NoError(t, err)
		require.NoError(t, r.lim.Started(ctx, d.Lease))
		r.clock.Advance(5 * time.Minute)
		d, err = renew(ctx, r.lim, d)
		require.NoError(t, err)
		r.clock.Advance(5 * time.Minute) // 00:05 on 1 February
		d, err = renew(ctx, r.lim, d)
		require.NoError(t, err)
		require.NoError(t, r.lim.Release(ctx, d.Lease))
		assert.Equal(t, "300000", r.admin.HGet(ctx, r.key("used", "a"), "202601").Val())
		assert.Equal(t, "300000", r.admin.HGet(ctx, r.key("used", "a"), "202602").Val())

		d, err = r.lim.Acquire(ctx, req("a", "s2", plan))
		require.NoError(t, err)
		require.True(t, d.Granted(), "5 of 6 February minutes used")
		require.NoError(t, r.lim.Started(ctx, d.Lease))
		r.clock.Advance(time.Minute)
		d2, err := r.lim.Acquire(ctx, req("a", "s3", plan))
		require.NoError(t, err)
		assert.Equal(t, limits.TrialQuota, d2.Refused)
	})
	t.Run("a new month starts afresh", func(t *testing.T) {
		r := newClockedRig(t, redislimiter.Config{LeaseTTL: 48 * time.Hour}, nil)
		r.clock.Freeze(time.Date(2024, 2, 28, 12, 0, 0, 0, time.UTC))
		plan := trial
		plan.MonthlyMinutes = 1
		d, err := r.lim.Acquire(ctx, req("a", "s1", plan))
		require.NoError(t, err)
		require.NoError(t, r.lim.Started(ctx, d.Lease))
		r.clock.Advance(time.Hour)
		require.NoError(t, r.lim.Release(ctx, d.Lease))
		d, err = r.lim.Acquire(ctx, req("a", "s2", plan))
		require.NoError(t, err)
		require.Equal(t, limits.TrialQuota, d.Refused)
		r.clock.Advance(36 * time.Hour) // 1 March 2024, a leap year
		d, err = r.lim.Acquire(ctx, req("a", "s2", plan))
		require.NoError(t, err)
		assert.True(t, d.Granted())
		assert.Equal(t, "3600000", r.admin.HGet(ctx, r.key("used", "a"), "202402").Val())
	})
	t.Run("negative minutes refuse", func(t *testing.T) {
		r := newClockedRig(t, redislimiter.Config{}, nil)
		d, err := r.lim.Acquire(ctx, req("a", "s", limits.Plan{MaxConcurrent: 1, Trial: true, MonthlyMinutes: -1}))
		require.NoError(t, err)
		assert.Equal(t, limits.TrialQuota, d.Refused)
	})
	t.Run("paid sessions count nothing", func(t *testing.T) {
		r := newClockedRig(t, redislimiter.Config{LeaseTTL: time.Hour}, nil)
		r.clock.Freeze(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
		d, err := r.lim.Acquire(ctx, req("a", "s1", limits.PaidPlan))
		require.NoError(t, err)
		require.NoError(t, r.lim.Started(ctx, d.Lease))
		r.clock.Advance(30 * time.Minute)
		require.NoError(t, r.lim.Release(ctx, d.Lease))
		// The account moves to a trial plan: the paid half hour is not held
		// against it.
		d, err = r.lim.Acquire(ctx, req("a", "s2", trial))
		require.NoError(t, err)
		assert.True(t, d.Granted())
		assert.Zero(t, r.admin.Exists(ctx, r.key("used", "a")).Val())
	})
	t.Run("a dead holder's minutes count up to its expiry", func(t *testing.T) {
		r := newClockedRig(t, redislimiter.Config{LeaseTTL: time.Minute}, nil)
		r.clock.Freeze(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		plan := trial
		plan.MonthlyMinutes = 2
		d, err := r.lim.Acquire(ctx, req("a", "s1", plan))
		require.NoError(t, err)
		require.NoError(t, r.lim.Started(ctx, d.Lease))
		r.clock.Advance(time.Hour) // never renewed nor released: 1 minute, not 60
		d, err = r.lim.Acquire(ctx, req("a", "s2", plan))
		require.NoError(t, err)
		require.True(t, d.Granted(), "1 of 2 minutes used")
		require.NoError(t, r.lim.Started(ctx, d.Lease))
		r.clock.Advance(59 * time.Second)
		d2, err := r.lim.Acquire(ctx, req("a", "s3", plan))
		require.NoError(t, err)
		require.True(t, d2.Granted(), "1:59 of 2 minutes used")
		r.clock.Advance(time.Second)
		d3, err := r.lim.Acquire(ctx, req("a", "s4", plan))
		require.NoError(t, err)
		assert.Equal(t, limits.TrialQuota, d3.Refused, "2 of 2 minutes used")
		// A late release of the dead session counts nothing more.
		require.NoError(t, r.lim.Release(ctx, limits.Lease{Account: "a", SessionID: "s1"}))
		assert.Equal(t, "60000", r.admin.HGet(ctx, r.key("used", "a"), "202605").Val())
	})
}

func renew(ctx context.Context, l *redislimiter.Limiter, d limits.Decision) (limits.Decision, error) {
	lease, err := l.Renew(ctx, d.Lease)
	return limits.Decision{Lease: lease}, err
}

func TestLeaseLifecycle(t *testing.T) {
	ctx := context.Background()
	r := newClockedRig(t, redislimiter.Config{LeaseTTL: time.Minute, Capacity: 1}, nil)
	d, err := r.lim.Acquire(ctx, req("a", "s", paid))
	require.NoError(t, err)
	require.True(t, d.Granted())
	lease := d.Lease

	r.clock.Advance(40 * time.Second)
	renewed, err := r.lim.Renew(ctx, lease)
	require.NoError(t, err)
	assert.Equal(t, 40*time.Second, renewed.Expires.Sub(lease.Expires).Round(time.Second))
	r.clock.Advance(40 * time.Second) // past the first expiry, within the renewed one
	other, err := r.lim.Acquire(ctx, req("b", "t", paid))
	require.NoError(t, err)
	assert.Equal(t, limits.SessionFull, other.Refused, "the renewed slot still holds the capacity")

	r.clock.Advance(time.Minute) // past the renewed expiry
	other, err = r.lim.Acquire(ctx, req("b", "t", paid))
	require.NoError(t, err)
	require.True(t, other.Granted(), "an expired slot is free")
	_, err = r.lim.Renew(ctx, renewed)
	assert.ErrorIs(t, err, limits.ErrLeaseExpired)
	require.NoError(t, r.lim.Release(ctx, renewed), "releasing an expired lease is harmless")

	require.NoError(t, r.lim.Release(ctx, other.Lease))
	require.NoError(t, r.lim.Release(ctx, other.Lease))
	_, err = r.lim.Renew(ctx, other.Lease)
	assert.ErrorIs(t, err, limits.ErrLeaseExpired, "a released lease does not renew")

	never := limits.Lease{Account: "c", SessionID: "never", Expires: other.Lease.Expires}
	_, err = r.lim.Renew(ctx, never)
	assert.ErrorIs(t, err, limits.ErrLeaseExpired, "a lease never granted does not renew")
	_, err = r.lim.Renew(ctx, limits.Lease{Account: "c", SessionID: "zero"})
	assert.ErrorIs(t, err, limits.ErrLeaseExpired)
	assert.Zero(t, r.admin.ZCard(ctx, r.key("slots", "c")).Val())
}

func TestRenewAdoptsLeasesRedisLost(t *testing.T) {
	ctx := context.Background()
	r := newClockedRig(t, redislimiter.Config{Capacity: 1}, nil)
	d, err := r.lim.Acquire(ctx, req("a", "s", paid))
	require.NoError(t, err)
	require.True(t, d.Granted())
	r.clock.Advance(time.Second)

	r.srv.Restart() // nothing persisted: the slot is gone
	renewed, err := r.lim.Renew(ctx, d.Lease)
	require.NoError(t, err, "a running session survives a Redis restart")
	assert.True(t, renewed.Expires.After(d.Lease.Expires))
	other, err := r.lim.Acquire(ctx, req("b", "t", paid))
	require.NoError(t, err)
	assert.Equal(t, limits.SessionFull, other.Refused, "the adopted slot counts")
	require.NoError(t, r.lim.Release(ctx, renewed))
	_, err = r.lim.Renew(ctx, renewed)
	assert.ErrorIs(t, err, limits.ErrLeaseExpired)
}

func TestExpiredSlotsArePurgedInBoundedBatches(t *testing.T) {
	ctx := context.Background()
	const batch, dead = 16, 1000
	r := newClockedRig(t, redislimiter.Config{PurgeBatch: batch, LeaseTTL: time.Minute, Capacity: 10}, nil)
	r.clock.Freeze(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	past := float64(time.Date(2026, 5, 31, 0, 0, 0, 0, time.UTC).UnixMilli())
	capKey := "{" + r.cfg.Prefix + "}:cap"
	var members []redis.Z
	for i := range dead {
		members = append(members, redis.Z{Score: past, Member: fmt.Sprint("dead", i)})
	}
	require.NoError(t, r.admin.ZAdd(ctx, r.key("slots", "a"), members...).Err())
	require.NoError(t, r.admin.ZAdd(ctx, capKey, members...).Err())

	d, err := r.lim.Acquire(ctx, req("a", "s", paid))
	require.NoError(t, err)
	require.True(t, d.Granted(), "expired members hold nothing")
	assert.Equal(t, int64(dead-batch+1), r.admin.ZCard(ctx, r.key("slots", "a")).Val(), "one call purges one batch of the account")
	assert.Equal(t, int64(dead-batch+1), r.admin.ZCard(ctx, capKey).Val(), "one call purges one batch of the service")

	// Every acquire that finds a set over its limit purges one more batch.
	for i := range (dead + batch - 1) / batch {
		d, err := r.lim.Acquire(ctx, req("a", fmt.Sprint("s", i), paid))
		require.NoError(t, err)
		if d.Granted() {
			require.NoError(t, r.lim.Release(ctx, d.Lease))
		}
	}
	assert.Equal(t, int64(1), r.admin.ZCard(ctx, r.key("slots", "a")).Val(), "the backlog is worked off")
	// The service set is purged while it holds more than the capacity: what
	// is left is bounded by it, and expired members never count.
	assert.LessOrEqual(t, r.admin.ZCard(ctx, capKey).Val(), int64(10))
	for i := range 9 {
		d, err := r.lim.Acquire(ctx, req(fmt.Sprint("b", i), "s", paid))
		require.NoError(t, err)
		require.True(t, d.Granted(), "slot %d of the 9 left", i+1)
	}
	d, err = r.lim.Acquire(ctx, req("c", "s", paid))
	require.NoError(t, err)
	assert.Equal(t, limits.SessionFull, d.Refused)
}

func TestOneRoundTripPerCall(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, redislimiter.Config{Capacity: 10}, nil)
	// The first run of each script loads it (EVALSHA answers NOSCRIPT, then
	// EVAL): warm up once.
	warm, err := r.lim.Acquire(ctx, req("a", "warm", trial))
	require.NoError(t, err)
	require.NoError(t, r.lim.Started(ctx, warm.Lease))
	_, err = r.lim.Renew(ctx, warm.Lease)
	require.NoError(t, err)
	require.NoError(t, r.lim.Release(ctx, warm.Lease))

	calls := []struct {
		name string
		call func(limits.Lease) (limits.Lease, error)
	}{
		{"acquire", func(limits.Lease) (limits.Lease, error) {
			d, err := r.lim.Acquire(ctx, req("a", "s", trial))
			return d.Lease, err
		}},
		{"started", func(l limits.Lease) (limits.Lease, error) { return l, r.lim.Started(ctx, l) }},
		{"renew", func(l limits.Lease) (limits.Lease, error) { return r.lim.Renew(ctx, l) }},
		{"release", func(l limits.Lease) (limits.Lease, error) { return l, r.lim.Release(ctx, l) }},
	}
	// check makes the four calls in a row, alone: each is one script, one
	// round trip, except the first when first costs more.
	check := func(t *testing.T, first int64, wantNames []string) {
		var lease limits.Lease
		for i, c := range calls {
			r.hook.reset()
			var err error
			lease, err = c.call(lease)
			require.NoError(t, err, c.name)
			want := int64(1)
			if i == 0 {
				want = first
				assert.Equal(t, wantNames, r.hook.names(), c.name)
			}
			assert.Equal(t, want, r.hook.commands.Load(), "%s: round trips", c.name)
		}
	}
	t.Run("warm", func(t *testing.T) { check(t, 1, []string{"evalsha"}) })
	t.Run("after SCRIPT FLUSH", func(t *testing.T) {
		// A flush or failover empties the script cache: the next call
		// answers NOSCRIPT and is sent again with EVAL, which loads the one
		// script all calls share; then EVALSHA works again.
		require.NoError(t, r.admin.ScriptFlush(ctx).Err())
		check(t, 2, []string{"evalsha", "eval"})
		check(t, 1, []string{"evalsha"})
	})
}

func TestNamesAreDistinct(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	l, err := redislimiter.New(client, redislimiter.Config{Prefix: "p"})
	require.NoError(t, err)
	defer l.Close()
	seen := map[string]string{}
	for _, c := range []struct{ account, session string }{
		{"a", "bc"}, {"ab", "c"}, {"a:b", "c"}, {"a", "b:c"}, {"slots:a", "x"}, {"run:a", "x"}, {"a", "x"}, {"{p}", "x"},
	} {
		slots, run, used, member := l.Names(c.account, c.session)
		for _, name := range []string{slots, run, used} {
			assert.True(t, strings.HasPrefix(name, "{p}:"), name)
		}
		assert.Equal(t, "{p}:slots:"+c.account, slots)
		assert.Equal(t, "{p}:run:"+c.account, run)
		assert.Equal(t, "{p}:used:"+c.account, used)
		if prev, ok := seen[member]; ok {
			t.Errorf("member %q of %v also names %s", member, c, prev)
		}
		seen[member] = fmt.Sprint(c)
	}
}

func TestKeysShareOneHashTag(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, redislimiter.Config{Prefix: "svc", Capacity: 10}, nil)
	for _, account := range []string{"plain", "with:colon", "{braced}", "}odd{", "üñí"} {
		d, err := r.lim.Acquire(ctx, req(account, "s{1}", trial))
		require.NoError(t, err)
		require.True(t, d.Granted())
		require.NoError(t, r.lim.Started(ctx, d.Lease))
		_, err = r.lim.Renew(ctx, d.Lease)
		require.NoError(t, err)
		require.NoError(t, r.lim.Release(ctx, d.Lease))
	}
	r.hook.mu.Lock()
	defer r.hook.mu.Unlock()
	require.NotEmpty(t, r.hook.keys)
	for _, ks := range r.hook.keys {
		require.NotEmpty(t, ks)
		for _, k := range ks {
			assert.Equal(t, "svc", hashTag(k), "key %q", k)
		}
	}
	// Every key the scripts wrote carries the tag too.
	keys, err := r.admin.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for _, k := range keys {
		assert.Equal(t, "svc", hashTag(k), "stored key %q", k)
	}
}

// hashTag is Redis Cluster's rule: the part between the first '{' and the
// next '}', when not empty, decides the slot.
func hashTag(key string) string {
	s := strings.IndexByte(key, '{')
	if s < 0 {
		return ""
	}
	e := strings.IndexByte(key[s+1:], '}')
	if e <= 0 {
		return ""
	}
	return key[s+1 : s+1+e]
}

func TestLimitsHoldUnderManyGoroutines(t *testing.T) {
	cfg := redislimiter.Config{Capacity: manyCapacity}
	srv := redistest.Start(t)
	// Two limiters on two clients stand for two nodes.
	nodes := []*rig{newRigOn(t, srv, cfg, &redis.Options{ContextTimeoutEnabled: true, PoolSize: 8}), nil}
	cfg.Prefix = nodes[0].cfg.Prefix
	nodes[1] = newRigOn(t, srv, cfg, &redis.Options{ContextTimeoutEnabled: true, PoolSize: 8})
	limitsHoldUnderManyGoroutines(t, []*redislimiter.Limiter{nodes[0].lim, nodes[1].lim}, nodes[0].admin, cfg.Prefix)
}

// manyCapacity is the service capacity of limitsHoldUnderManyGoroutines.
const manyCapacity = 7

// limitsHoldUnderManyGoroutines makes 32 goroutines spread over nodes (one
// limiter each, all under prefix, with Capacity manyCapacity) race, round
// after round, for slots on four accounts of three slots each: in every
// round all of them acquire at once, then all that were granted release.
// Twelve slots are wanted and seven allowed, so each round grants exactly
// the capacity, never more than three on one account; at the end nothing
// is held in Redis (checked through admin).
func limitsHoldUnderManyGoroutines(t *testing.T, nodes []*redislimiter.Limiter, admin redis.Cmdable, prefix string) {
	ctx := context.Background()
	const accounts, workers, rounds = 4, 32, 20
	plan := limits.Plan{MaxConcurrent: 3}

	for round := range rounds {
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			granted   []limits.Lease
			perAcct   = map[string]int{}
			failures  []error
			acquiring = make(chan struct{})
		)
		for w := range workers {
			wg.Go(func() {
				lim := nodes[w%len(nodes)]
				account := fmt.Sprint("acct", w%accounts)
				<-acquiring // all at once
				d, err := lim.Acquire(ctx, req(account, fmt.Sprint(round, "-", w), plan))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					failures = append(failures, err)
				case d.Granted():
					granted = append(granted, d.Lease)
					perAcct[account]++
				}
			})
		}
		close(acquiring)
		wg.Wait()
		require.Empty(t, failures, "round %d", round)
		require.Len(t, granted, manyCapacity, "round %d: exactly the capacity", round)
		for a, n := range perAcct {
			require.LessOrEqual(t, n, plan.MaxConcurrent, "round %d, account %s", round, a)
		}
		for i, l := range granted {
			wg.Go(func() { assert.NoError(t, nodes[i%len(nodes)].Release(ctx, l)) })
		}
		wg.Wait()
	}
	assert.Zero(t, admin.ZCard(ctx, "{"+prefix+"}:cap").Val(), "all released")
}

// TestRedisTimeIsTheDefaultClock: without Config.Clock the scripts take
// the time from Redis TIME (a redis-server on this machine: its clock is
// ours).
func TestRedisTimeIsTheDefaultClock(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, redislimiter.Config{LeaseTTL: time.Minute}, nil)
	before := time.Now().Truncate(time.Millisecond)
	d, err := r.lim.Acquire(ctx, req("a", "s", paid))
	require.NoError(t, err)
	after := time.Now()
	require.True(t, d.Granted())
	assert.False(t, d.Lease.Expires.Before(before.Add(time.Minute)), "expires %v, acquired after %v", d.Lease.Expires, before)
	assert.False(t, d.Lease.Expires.After(after.Add(time.Minute)), "expires %v, acquired before %v", d.Lease.Expires, after)
	score, err := r.admin.ZScore(ctx, r.key("slots", "a"), "s").Result()
	require.NoError(t, err)
	assert.Equal(t, float64(d.Lease.Expires.UnixMilli()), score, "the slot's expiry in Redis")
	renewed, err := r.lim.Renew(ctx, d.Lease)
	require.NoError(t, err)
	assert.False(t, renewed.Expires.Before(d.Lease.Expires), "renewed on the same clock")
	require.NoError(t, r.lim.Release(ctx, d.Lease))
}

func TestClosedLimiterRefuses(t *testing.T) {
	r := newRig(t, redislimiter.Config{}, nil)
	require.NoError(t, r.lim.Close())
	require.NoError(t, r.lim.Close())
	ctx := context.Background()
	_, err := r.lim.Acquire(ctx, req("a", "s", paid))
	assert.ErrorIs(t, err, limits.ErrUnavailable)
	lease := limits.Lease{Account: "a", SessionID: "s"}
	assert.ErrorIs(t, r.lim.Started(ctx, lease), limits.ErrUnavailable)
	_, err = r.lim.Renew(ctx, lease)
	assert.ErrorIs(t, err, limits.ErrUnavailable)
	assert.ErrorIs(t, r.lim.Release(ctx, lease), limits.ErrUnavailable)
}
