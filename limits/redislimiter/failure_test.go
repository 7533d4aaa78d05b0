package redislimiter_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

// deadline is the context deadline of the calls made while Redis is down;
// slack is how late after it a call may return (scheduling on a loaded
// machine), well under what Redis is down for.
const (
	deadline = 200 * time.Millisecond
	slack    = time.Second
)

// callAll makes each limiter call at once, each with a short deadline, and
// returns the errors and the longest time a call took.
func callAll(t *testing.T, l *redislimiter.Limiter, lease limits.Lease) (acquire limits.Decision, errs map[string]error, longest time.Duration) {
	t.Helper()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	errs = map[string]error{}
	timed := func(name string, f func(ctx context.Context) error) {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err := f(ctx)
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			errs[name] = err
			longest = max(longest, took)
		})
	}
	timed("acquire", func(ctx context.Context) error {
		d, err := l.Acquire(ctx, req("a", "new", paid))
		mu.Lock()
		acquire = d
		mu.Unlock()
		return err
	})
	timed("started", func(ctx context.Context) error { return l.Started(ctx, lease) })
	timed("renew", func(ctx context.Context) error { _, err := l.Renew(ctx, lease); return err })
	timed("keep", func(ctx context.Context) error { return l.Keep(ctx, lease) })
	timed("release", func(ctx context.Context) error { return l.Release(ctx, lease) })
	wg.Wait()
	return acquire, errs, longest
}

func TestRedisDownFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  *redis.Options
	}{
		{"context timeouts on", &redis.Options{ContextTimeoutEnabled: true}},
		{"context timeouts off", &redis.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, redislimiter.Config{}, tc.opt)
			d, err := r.lim.Acquire(context.Background(), req("a", "s", paid))
			require.NoError(t, err)
			require.True(t, d.Granted())

			t.Run("killed", func(t *testing.T) {
				r.srv.Kill()
				defer r.srv.Restart()
				got, errs, longest := callAll(t, r.lim, d.Lease)
				assert.False(t, got.Granted() && got.Lease != (limits.Lease{}), "fail-closed grants nothing")
				for name, err := range errs {
					assert.ErrorIs(t, err, limits.ErrUnavailable, name)
					e, ok := sserrors.As(err)
					require.True(t, ok, name)
					assert.Equal(t, 503, e.Status, name)
				}
				assert.Less(t, longest, deadline+slack)
			})
			t.Run("paused", func(t *testing.T) {
				// CLIENT UNPAUSE would wait for the pause too: keep it short.
				require.NoError(t, r.admin.Do(context.Background(), "CLIENT", "PAUSE", "1000", "ALL").Err())
				_, errs, longest := callAll(t, r.lim, d.Lease)
				for name, err := range errs {
					assert.ErrorIs(t, err, limits.ErrUnavailable, name)
					assert.ErrorIs(t, err, context.DeadlineExceeded, name)
				}
				assert.Less(t, longest, deadline+slack)
			})
			t.Run("DEBUG SLEEP", func(t *testing.T) {
				wait := sleepServer(t, r.srv.Addr(), time.Second)
				_, errs, longest := callAll(t, r.lim, d.Lease)
				wait()
				for name, err := range errs {
					assert.ErrorIs(t, err, limits.ErrUnavailable, name)
					assert.ErrorIs(t, err, context.DeadlineExceeded, name)
				}
				assert.Less(t, longest, deadline+slack)
			})
		})
	}
}

// TestTimedOutAcquireLeavesNoSecondSlot: an Acquire whose reply never came
// may still run once Redis wakes up; its slot is the one the next Acquire for
// the same session finds, or it expires.
func TestTimedOutAcquireLeavesNoSecondSlot(t *testing.T) {
	r := newClockedRig(t, redislimiter.Config{LeaseTTL: time.Minute, Capacity: 1}, nil)
	bg := context.Background()
	// Load the script, so that the timed-out call is one EVALSHA.
	d, err := r.lim.Acquire(bg, req("a", "warm", paid))
	require.NoError(t, err)
	require.NoError(t, r.lim.Release(bg, d.Lease))

	wait := sleepServer(t, r.srv.Addr(), time.Second)
	ctx, cancel := context.WithTimeout(bg, deadline)
	_, err = r.lim.Acquire(ctx, req("a", "s", paid))
	cancel()
	require.ErrorIs(t, err, limits.ErrUnavailable)
	wait()

	d, err = r.lim.Acquire(bg, req("a", "s", paid))
	require.NoError(t, err)
	assert.True(t, d.Granted(), "the retry finds its own slot, whether or not the timed-out call ran")
	assert.LessOrEqual(t, r.admin.ZCard(bg, r.key("slots", "a")).Val(), int64(1))

	// A slot taken by a call nobody heard back from and never retried
	// expires with its lease.
	r.clock.Advance(2 * time.Minute)
	other, err := r.lim.Acquire(bg, req("b", "t", paid))
	require.NoError(t, err)
	assert.True(t, other.Granted())
}

func TestRedisDownFailOpen(t *testing.T) {
	var seen atomic.Int64
	cfg := redislimiter.Config{Failure: limits.FailOpen, Capacity: 1,
		OnFailOpen: func(err error) {
			if err != nil {
				seen.Add(1)
			}
		}}
	r := newRig(t, cfg, nil)
	bg := context.Background()
	held, err := r.lim.Acquire(bg, req("a", "held", paid))
	require.NoError(t, err)
	require.True(t, held.Granted())

	r.srv.Kill()
	got, errs, longest := callAll(t, r.lim, held.Lease)
	assert.Less(t, longest, deadline+slack)
	require.NoError(t, errs["acquire"], "fail-open admits")
	require.True(t, got.Granted())
	assert.Equal(t, "new", got.Lease.SessionID)
	assert.False(t, got.Lease.Expires.IsZero())
	assert.Equal(t, uint64(1), r.lim.FailOpenCount())
	assert.Equal(t, int64(1), seen.Load())
	for _, name := range []string{"started", "renew", "keep", "release"} {
		assert.ErrorIs(t, errs[name], limits.ErrUnavailable, "%s: only Acquire fails open", name)
	}

	// A caller that gave up is not admitted.
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err = r.lim.Acquire(ctx, req("a", "gave-up", paid))
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, errors.Is(err, limits.ErrUnavailable), "a caller that gave up is not a Redis failure")
	assert.Equal(t, uint64(1), r.lim.FailOpenCount())

	// Redis comes back empty: the fail-open lease is put into Redis at its
	// first renewal and counts from then on.
	r.srv.Restart()
	renewed, err := r.lim.Renew(bg, got.Lease)
	require.NoError(t, err)
	assert.Equal(t, int64(1), r.admin.ZCard(bg, r.key("slots", "a")).Val())
	other, err := r.lim.Acquire(bg, req("b", "t", paid))
	require.NoError(t, err)
	assert.Equal(t, limits.SessionFull, other.Refused)
	require.NoError(t, r.lim.Release(bg, renewed))
	other, err = r.lim.Acquire(bg, req("b", "t", paid))
	require.NoError(t, err)
	assert.True(t, other.Granted())
}

// TestFailOpenLeaseKept: a fail-open lease is put into Redis by Keep,
// kept, when Redis comes back.
func TestFailOpenLeaseKept(t *testing.T) {
	r := newRig(t, redislimiter.Config{Failure: limits.FailOpen, Capacity: 1}, nil)
	bg := context.Background()
	r.srv.Kill()
	got, err := r.lim.Acquire(bg, req("a", "open", paid))
	require.NoError(t, err)
	require.True(t, got.Granted())
	r.srv.Restart()
	require.NoError(t, r.lim.Keep(bg, got.Lease))
	score, err := r.admin.ZScore(bg, r.key("slots", "a"), "open").Result()
	require.NoError(t, err)
	assert.Equal(t, float64(1<<52), score, "kept")
	other, err := r.lim.Acquire(bg, req("b", "t", paid))
	require.NoError(t, err)
	assert.Equal(t, limits.SessionFull, other.Refused)
	require.NoError(t, r.lim.Release(bg, got.Lease))
	other, err = r.lim.Acquire(bg, req("b", "t", paid))
	require.NoError(t, err)
	assert.True(t, other.Granted())
}

// TestGuardedCallsFinishBeforeClose: with a client that ignores context
// deadlines, calls still return by the deadline, and Close waits for the
// goroutines that carry them.
func TestGuardedCallsFinishBeforeClose(t *testing.T) {
	r := newRig(t, redislimiter.Config{}, &redis.Options{ReadTimeout: 2 * time.Second, MaxRetries: -1})
	bg := context.Background()
	_, err := r.lim.Acquire(bg, req("a", "warm", paid))
	require.NoError(t, err)
	require.NoError(t, r.admin.Do(bg, "CLIENT", "PAUSE", "1000", "ALL").Err())
	ctx, cancel := context.WithTimeout(bg, deadline)
	defer cancel()
	start := time.Now()
	_, err = r.lim.Acquire(ctx, req("a", "s", paid))
	assert.Less(t, time.Since(start), deadline+slack)
	assert.ErrorIs(t, err, limits.ErrUnavailable)
	require.NoError(t, r.lim.Close()) // waits for the paused call; goleak checks
}

// TestLoadThroughOutage keeps many goroutines acquiring and releasing while
// Redis is killed, restarted and paused: every call returns by its deadline
// with a typed error or a decision, and once the leases have had time to
// expire no slot is left behind.
func TestLoadThroughOutage(t *testing.T) {
	const workers, capacity = 16, 16
	r := newClockedRig(t, redislimiter.Config{Capacity: capacity, LeaseTTL: time.Minute}, &redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1})
	bg := context.Background()
	r.clock.SetNow(time.Now())

	var (
		stop      = make(chan struct{})
		failures  = make(chan error, 1024)
		successes = make(chan struct{}, 1024)
		wg        sync.WaitGroup
		mu        sync.Mutex
		pending   []limits.Lease // granted, release failed
		late      atomic.Int64   // calls that overran their deadline
	)
	call := func(f func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(bg, deadline)
		defer cancel()
		start := time.Now()
		err := f(ctx)
		if time.Since(start) > deadline+slack {
			late.Add(1)
		}
		return err
	}
	report := func(err error) {
		if err == nil {
			select {
			case successes <- struct{}{}:
			default:
			}
			return
		}
		select {
		case failures <- err:
		default:
		}
	}
	for w := range workers {
		wg.Go(func() {
			account := fmt.Sprint("acct", w)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var d limits.Decision
				err := call(func(ctx context.Context) error {
					var err error
					d, err = r.lim.Acquire(ctx, req(account, fmt.Sprint(w, "-", i), paid))
					return err
				})
				report(err)
				if err != nil || !d.Granted() {
					continue
				}
				err = call(func(ctx context.Context) error { return r.lim.Release(ctx, d.Lease) })
				report(err)
				if err != nil {
					mu.Lock()
					pending = append(pending, d.Lease)
					mu.Unlock()
				}
			}
		})
	}
	drain := func(c <-chan struct{}, n int) {
		for range n {
			<-c
		}
	}
	waitFailure := func() error { return <-failures }

	drain(successes, 50)
	r.srv.Kill()
	err := waitFailure()
	r.srv.Restart()
	for len(failures) > 0 {
		<-failures
	}
	drain(successes, 50)
	require.NoError(t, r.admin.Do(bg, "CLIENT", "PAUSE", "500", "ALL").Err())
	err2 := waitFailure()
	close(stop)
	wg.Wait()
	close(failures)

	for _, e := range append([]error{err, err2}, drainErrs(failures)...) {
		assert.ErrorIs(t, e, limits.ErrUnavailable)
	}
	assert.Zero(t, late.Load(), "calls that overran their deadline")

	// Whatever slots the outage left (releases that failed, acquires that ran
	// after their caller gave up) expire with their leases.
	r.clock.Advance(2 * time.Minute)
	for i := range capacity {
		d, err := r.lim.Acquire(bg, req(fmt.Sprint("after", i), "s", paid))
		require.NoError(t, err)
		require.True(t, d.Granted(), "slot %d of %d free after the TTL (%d releases had failed)", i+1, capacity, len(pending))
	}
}

func drainErrs(c <-chan error) []error {
	var errs []error
	for err := range c {
		errs = append(errs, err)
	}
	return errs
}
