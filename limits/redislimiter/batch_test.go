package redislimiter_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

// holder holds a limiter's first batch in flight until released (a
// go-redis hook on the limiter's client blocks its script), records the
// size of every batch sent, and tells when a number of calls wait in the
// queue behind it.
type holder struct {
	lim   *redislimiter.Limiter
	mu    sync.Mutex
	sizes []int
	first chan struct{} // closed to let the first batch go
	held  chan struct{} // closed once the first batch is held
}

// hold installs the holder on r's client. The warm-up script must have run
// (warm): every batch is then one EVALSHA.
func hold(t *testing.T, r *rig) *holder {
	h := &holder{lim: r.lim, first: make(chan struct{}), held: make(chan struct{})}
	r.client.AddHook(h)
	t.Cleanup(h.release) // never leave a flusher held
	return h
}

func (h *holder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// ProcessHook counts the calls of each batch script from its keys: two of
// the service's, then three per call.
func (h *holder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := strings.ToLower(cmd.Name()); name == "evalsha" || name == "eval" {
			n := (int(toInt64(cmd.Args()[2])) - 2) / 3
			h.mu.Lock()
			h.sizes = append(h.sizes, n)
			first := len(h.sizes) == 1
			h.mu.Unlock()
			if first {
				close(h.held)
				<-h.first
			}
		}
		return next(ctx, cmd)
	}
}

// start makes a call on its own goroutine and returns once it is the held
// first batch.
func (h *holder) start(ctx context.Context, lim *redislimiter.Limiter, r limits.Request) <-chan acquired {
	out := acquireAsync(ctx, lim, r)
	<-h.held
	return out
}

// waitQueued returns once n calls wait in the queue.
func (h *holder) waitQueued(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.lim.Queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", h.lim.Queued(), n)
		}
		runtime.Gosched()
	}
}

func (h *holder) release() {
	select {
	case <-h.first:
	default:
		close(h.first)
	}
}

func (h *holder) batches() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.sizes...)
}

// acquireAsync runs Acquire on its own goroutine.
func acquireAsync(ctx context.Context, lim *redislimiter.Limiter, r limits.Request) <-chan acquired {
	out := make(chan acquired, 1)
	go func() {
		d, err := lim.Acquire(ctx, r)
		out <- acquired{d, err}
	}()
	return out
}

type acquired struct {
	d   limits.Decision
	err error
}

// warm loads the script, so that round trips count only calls.
func warm(t *testing.T, r *rig) {
	t.Helper()
	d, err := r.lim.Acquire(context.Background(), req("warm", "warm", paid))
	require.NoError(t, err)
	require.NoError(t, r.lim.Release(context.Background(), d.Lease))
	r.hook.reset()
}

func TestCallsWaitingTogetherShareOneScript(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, redislimiter.Config{Flushers: 1, Capacity: 100}, nil)
	warm(t, r)
	h := hold(t, r)
	plan := limits.Plan{MaxConcurrent: 3}

	first := h.start(ctx, r.lim, req("a", "s0", plan))
	const waiting = 9
	var rest []<-chan acquired
	for i := 1; i <= waiting; i++ {
		rest = append(rest, acquireAsync(ctx, r.lim, req("a", fmt.Sprint("s", i), plan)))
		h.waitQueued(t, i) // in order: the calls reach Redis in this order
	}
	h.release()

	got := <-first
	require.NoError(t, got.err)
	assert.True(t, got.d.Granted(), "the first call, alone in its batch")
	granted := 1
	for i, ch := range rest {
		got := <-ch
		require.NoError(t, got.err, "call %d", i+1)
		if got.d.Granted() {
			granted++
			assert.Less(t, i, 2, "the two slots left go to the first two that waited")
		} else {
			assert.Equal(t, limits.Concurrency, got.d.Refused, "call %d", i+1)
		}
	}
	assert.Equal(t, plan.MaxConcurrent, granted)
	assert.Equal(t, []int{1, waiting}, h.batches(), "one script for the lone call, one for all that waited")
	assert.Equal(t, int64(2), r.hook.commands.Load(), "round trips")
	assert.Equal(t, int64(plan.MaxConcurrent), r.admin.ZCard(ctx, r.key("slots", "a")).Val(), "slots held in Redis")
}

func TestBatchSizeBoundsAScript(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, redislimiter.Config{Flushers: 1, BatchSize: 4}, nil)
	warm(t, r)
	h := hold(t, r)

	first := h.start(ctx, r.lim, req("a", "s0", paid))
	var rest []<-chan acquired
	for i := 1; i <= 9; i++ {
		rest = append(rest, acquireAsync(ctx, r.lim, req(fmt.Sprint("a", i), "s", paid)))
		h.waitQueued(t, i)
	}
	h.release()
	for _, ch := range append(rest, first) {
		got := <-ch
		require.NoError(t, got.err)
		assert.True(t, got.d.Granted())
	}
	assert.Equal(t, []int{1, 4, 4, 1}, h.batches())
	assert.Equal(t, int64(4), r.hook.commands.Load(), "round trips")
}

func TestCallThatGivesUpWhileWaitingIsNeverSent(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, redislimiter.Config{Flushers: 1}, nil)
	warm(t, r)
	h := hold(t, r)

	first := h.start(ctx, r.lim, req("a", "s0", paid))
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := acquireAsync(cctx, r.lim, req("b", "s1", paid))
	h.waitQueued(t, 1)
	cancel()
	got := <-gaveUp
	assert.ErrorIs(t, got.err, limits.ErrUnavailable)
	assert.ErrorIs(t, got.err, context.Canceled)

	// A call with a deadline that passes while it waits.
	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer dcancel()
	late := acquireAsync(dctx, r.lim, req("c", "s2", paid))
	h.waitQueued(t, 1)
	got = <-late
	assert.ErrorIs(t, got.err, limits.ErrUnavailable)
	assert.ErrorIs(t, got.err, context.DeadlineExceeded)

	h.release()
	require.NoError(t, (<-first).err)
	require.NoError(t, r.lim.Close()) // the flusher is done: nothing more can be sent
	assert.Equal(t, []int{1}, h.batches(), "only the first call was sent")
	assert.Equal(t, int64(1), r.hook.commands.Load(), "round trips")
	for _, acct := range []string{"b", "c"} {
		assert.Zero(t, r.admin.Exists(ctx, r.key("slots", acct)).Val(), "account %s holds nothing", acct)
	}
}

func TestOneFailingCallLeavesItsBatchAlone(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, redislimiter.Config{Flushers: 1}, nil)
	warm(t, r)
	// The account's slots key holds a string: every call on it fails with
	// WRONGTYPE inside the script.
	require.NoError(t, r.admin.Set(ctx, r.key("slots", "broken"), "x", 0).Err())
	h := hold(t, r)

	first := h.start(ctx, r.lim, req("a", "s0", paid))
	before := acquireAsync(ctx, r.lim, req("b", "s", paid))
	h.waitQueued(t, 1)
	broken := acquireAsync(ctx, r.lim, req("broken", "s", paid))
	h.waitQueued(t, 2)
	after := acquireAsync(ctx, r.lim, req("c", "s", paid))
	h.waitQueued(t, 3)
	h.release()

	for name, ch := range map[string]<-chan acquired{"first": first, "before": before, "after": after} {
		got := <-ch
		require.NoError(t, got.err, name)
		assert.True(t, got.d.Granted(), name)
	}
	got := <-broken
	assert.ErrorIs(t, got.err, limits.ErrUnavailable)
	assert.ErrorContains(t, got.err, "WRONGTYPE")
	assert.Equal(t, []int{1, 3}, h.batches())
}

// TestEveryKindOfCallInOneBatch: an acquire, a started, a renew and a
// release waiting together give the answers each gives alone, also when the
// script is replayed (go-redis resending a command whose reply it lost).
func TestEveryKindOfCallInOneBatch(t *testing.T) {
	for _, replay := range []bool{false, true} {
		t.Run(fmt.Sprintf("replay=%v", replay), func(t *testing.T) {
			ctx := context.Background()
			r := newClockedRig(t, redislimiter.Config{Flushers: 1, LeaseTTL: time.Minute}, nil)
			warm(t, r)
			start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
			r.clock.Freeze(start)
			lease := func(acct string, plan limits.Plan) limits.Lease {
				d, err := r.lim.Acquire(ctx, req(acct, "s", plan))
				require.NoError(t, err)
				require.True(t, d.Granted())
				return d.Lease
			}
			toStart, toRenew, toRelease := lease("st", trial), lease("rn", paid), lease("rl", trial)
			require.NoError(t, r.lim.Started(ctx, toRelease))
			r.clock.Advance(2 * time.Minute / 3) // every lease still live
			r.hook.replay.Store(replay)
			h := hold(t, r)

			first := h.start(ctx, r.lim, req("a", "s0", paid))
			acq := acquireAsync(ctx, r.lim, req("new", "s", trial))
			h.waitQueued(t, 1)
			startedErr := make(chan error, 1)
			go func() { startedErr <- r.lim.Started(ctx, toStart) }()
			h.waitQueued(t, 2)
			type renewed struct {
				l   limits.Lease
				err error
			}
			renewedCh := make(chan renewed, 1)
			go func() {
				l, err := r.lim.Renew(ctx, toRenew)
				renewedCh <- renewed{l, err}
			}()
			h.waitQueued(t, 3)
			releasedErr := make(chan error, 1)
			go func() { releasedErr <- r.lim.Release(ctx, toRelease) }()
			h.waitQueued(t, 4)
			h.release()

			require.NoError(t, (<-first).err)
			got := <-acq
			require.NoError(t, got.err)
			assert.True(t, got.d.Granted())
			require.NoError(t, <-startedErr)
			rn := <-renewedCh
			require.NoError(t, rn.err)
			now := start.Add(2 * time.Minute / 3).Truncate(time.Millisecond)
			assert.Equal(t, now.Add(time.Minute), rn.l.Expires, "renewed to a full lease from now")
			require.NoError(t, <-releasedErr)
			want := []int{1, 4}
			if replay {
				want = []int{1, 1, 4, 4} // the holder sees every script sent, replays included
			}
			assert.Equal(t, want, h.batches())

			// What Redis holds says each call did its work once.
			assert.Equal(t, int64(1), r.admin.ZCard(ctx, r.key("slots", "new")).Val())
			assert.Equal(t, fmt.Sprint(now.UnixMilli()), r.admin.HGet(ctx, r.key("run", "st"), "s").Val(), "started counting now")
			assert.Zero(t, r.admin.ZCard(ctx, r.key("slots", "rl")).Val(), "released")
			month := now.Format("200601")
			assert.Equal(t, fmt.Sprint((2 * time.Minute / 3).Milliseconds()), r.admin.HGet(ctx, r.key("used", "rl"), month).Val(),
				"the released trial session's minutes counted once")
		})
	}
}

// TestCloseAnswersWaitingCalls: Close answers the calls still waiting for a
// flusher without sending them (a fail-open limiter grants nothing for
// them either), and waits for the script already out.
func TestCloseAnswersWaitingCalls(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, redislimiter.Config{Flushers: 1, Failure: limits.FailOpen}, nil)
	warm(t, r)
	h := hold(t, r)

	first := h.start(ctx, r.lim, req("a", "s0", paid))
	waiting := acquireAsync(ctx, r.lim, req("b", "s1", paid))
	h.waitQueued(t, 1)
	released := make(chan error, 1)
	go func() { released <- r.lim.Release(ctx, limits.Lease{Account: "c", SessionID: "s2"}) }()
	h.waitQueued(t, 2)

	closed := make(chan error, 1)
	go func() { closed <- r.lim.Close() }()
	got := <-waiting
	assert.ErrorIs(t, got.err, limits.ErrUnavailable)
	assert.Equal(t, limits.Lease{}, got.d.Lease, "no fail-open lease for a call Close answered")
	assert.ErrorIs(t, <-released, limits.ErrUnavailable)
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a script was still out", err)
	default:
	}

	h.release()
	require.NoError(t, <-closed)
	require.NoError(t, (<-first).err, "the script already out was answered")
	assert.Equal(t, []int{1}, h.batches(), "the waiting calls were never sent")
	assert.Equal(t, int64(1), r.hook.commands.Load(), "round trips")
	assert.Zero(t, r.lim.FailOpenCount())
	assert.Zero(t, r.admin.Exists(ctx, r.key("slots", "b")).Val())
}
