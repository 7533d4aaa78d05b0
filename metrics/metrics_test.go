package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/metrics"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

var testAvatars = session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}

// switchLimiter is the in-memory limiter with a switch that makes Acquire
// fail as an unreachable backend would.
type switchLimiter struct {
	*limits.Memory
	down atomic.Bool
}

func (l *switchLimiter) Acquire(ctx context.Context, r limits.Request) (limits.Decision, error) {
	if l.down.Load() {
		return limits.Decision{}, limits.ErrUnavailable.WithCause(errors.New("test: backend down"))
	}
	return l.Memory.Acquire(ctx, r)
}

// noHelp gathers without the HELP texts, so that expected expositions
// state the names, types, labels and values only.
type noHelp struct{ prometheus.Gatherer }

func (g noHelp) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.Gatherer.Gather()
	for _, mf := range mfs {
		mf.Help = new(string)
	}
	return mfs, err
}

// latency returns the exposition lines of n limiter calls of op that all
// took no time: under testing/synctest the clock does not move while a
// goroutine runs, so every call the Manager times lasts exactly zero.
func latency(op string, n int) string {
	var b strings.Builder
	for _, le := range metrics.DefaultLimiterBuckets {
		fmt.Fprintf(&b, "streamsession_limiter_call_duration_seconds_bucket{backend=\"memory\",op=%q,le=\"%g\"} %d\n", op, le, n)
	}
	fmt.Fprintf(&b, "streamsession_limiter_call_duration_seconds_bucket{backend=\"memory\",op=%q,le=\"+Inf\"} %d\n", op, n)
	fmt.Fprintf(&b, "streamsession_limiter_call_duration_seconds_sum{backend=\"memory\",op=%q} 0\n", op)
	fmt.Fprintf(&b, "streamsession_limiter_call_duration_seconds_count{backend=\"memory\",op=%q} %d\n", op, n)
	return b.String()
}

// transitions returns the exposition of the transitions counter with the
// given counts; every pair a session can take and that counts omits is 0.
func transitions(counts map[string]int) string {
	pairs := []string{
		"unknown>new", "new>connecting", "new>closing", "connecting>connected", "connecting>closing",
		"connected>closing", "closing>closed", "closed>unknown",
	}
	var b strings.Builder
	b.WriteString("# TYPE streamsession_session_transitions_total counter\n")
	for _, p := range pairs {
		from, to, _ := strings.Cut(p, ">")
		fmt.Fprintf(&b, "streamsession_session_transitions_total{from=%q,to=%q} %d\n", from, to, counts[p])
	}
	return b.String()
}

// sessions returns the exposition of the sessions gauge.
func sessions(byState map[string]int) string {
	var b strings.Builder
	b.WriteString("# TYPE streamsession_sessions gauge\n")
	for _, s := range fsm.States() {
		fmt.Fprintf(&b, "streamsession_sessions{state=%q} %d\n", s, byState[s.String()])
	}
	return b.String()
}

// TestScriptedSession drives a real Manager on the in-memory limiter
// through a scripted run (two sessions, three refusals, a backend outage,
// the end of retention) and checks every family and value.
func TestScriptedSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		reg := prometheus.NewPedanticRegistry()
		met, err := metrics.New(reg, metrics.Config{Backend: "memory"})
		require.NoError(t, err)
		lim := &switchLimiter{Memory: limits.NewMemory(limits.MemoryConfig{})}
		defer lim.Close()
		const retention = time.Minute
		m, err := session.NewManager(session.Config{
			Limiter: lim, Avatars: testAvatars, Hooks: met.SessionHooks(), Retention: retention,
		})
		require.NoError(t, err)
		defer m.Close(ctx)

		// One session at a time, on a trial plan (so Start tells the limiter).
		acme := session.Account{Name: "acme", Plan: limits.Plan{Name: "trial", MaxConcurrent: 1, Trial: true, MonthlyMinutes: 300}}
		a, err := m.Create(ctx, acme, session.CreateOptions{})
		require.NoError(t, err)
		_, err = m.Create(ctx, acme, session.CreateOptions{})
		require.ErrorIs(t, err, sserrors.ErrConcurrentLimitReached) // acquire refused: 10007
		_, err = m.Create(ctx, acme, session.CreateOptions{AvatarID: "nobody"})
		require.ErrorIs(t, err, sserrors.ErrStreamingAvatarNotFound) // before the limiter: 10012
		lim.down.Store(true)
		_, err = m.Create(ctx, session.Account{Name: "globex", Plan: limits.PaidPlan}, session.CreateOptions{})
		require.ErrorIs(t, err, limits.ErrUnavailable) // acquire failed: 400558, and its slot is released in case it was granted
		synctest.Wait()                                // that release runs in the background
		lim.down.Store(false)

		_, err = m.Start(ctx, "acme", a.ID)
		require.NoError(t, err)
		_, err = m.Join(ctx, "acme", a.ID)
		require.NoError(t, err)
		_, err = m.Stop(ctx, "acme", a.ID)
		require.NoError(t, err)
		b, err := m.Create(ctx, acme, session.CreateOptions{}) // the slot is free again
		require.NoError(t, err)

		want := sessions(map[string]int{"new": 1, "closed": 1}) +
			transitions(map[string]int{
				"unknown>new": 2, "new>connecting": 1, "connecting>connected": 1,
				"connected>closing": 1, "closing>closed": 1,
			}) + `
# TYPE streamsession_sessions_closed_total counter
streamsession_sessions_closed_total{reason="stop"} 1
# TYPE streamsession_session_refusals_total counter
streamsession_session_refusals_total{code="10007"} 1
streamsession_session_refusals_total{code="10012"} 1
streamsession_session_refusals_total{code="400558"} 1
# TYPE streamsession_limiter_call_duration_seconds histogram
` + latency("acquire", 4) + latency("keep", 0) + latency("release", 2) + latency("renew", 0) + latency("started", 1) + `
# TYPE streamsession_limiter_errors_total counter
streamsession_limiter_errors_total{backend="memory",op="acquire"} 1
streamsession_limiter_errors_total{backend="memory",op="release"} 0
streamsession_limiter_errors_total{backend="memory",op="keep"} 0
streamsession_limiter_errors_total{backend="memory",op="renew"} 0
streamsession_limiter_errors_total{backend="memory",op="started"} 0
# TYPE streamsession_limiter_fail_open_total counter
streamsession_limiter_fail_open_total{backend="memory"} 0
# TYPE streamsession_realtime_sockets gauge
streamsession_realtime_sockets 0
# TYPE streamsession_relay_announce_failures_total counter
streamsession_relay_announce_failures_total 0
# TYPE streamsession_drains_total counter
streamsession_drains_total 0
# TYPE streamsession_draining gauge
streamsession_draining 0
# TYPE streamsession_store_resets_total counter
streamsession_store_resets_total 0
# TYPE streamsession_redis_wait_short_total counter
streamsession_redis_wait_short_total 0
` + background(nil)
		require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(want)))

		// b is stopped while still new; after the retention window both
		// sessions are forgotten and leave the closed count.
		_, err = m.Stop(ctx, "acme", b.ID)
		require.NoError(t, err)
		assert.Equal(t, 2.0, gaugeValue(t, reg, "closed"))
		time.Sleep(retention + time.Second)
		synctest.Wait()

		want = sessions(nil) + transitions(map[string]int{
			"unknown>new": 2, "new>connecting": 1, "new>closing": 1, "connecting>connected": 1,
			"connected>closing": 1, "closing>closed": 2, "closed>unknown": 2,
		})
		require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(want),
			"streamsession_sessions", "streamsession_session_transitions_total"))
		wantRelease := "# TYPE streamsession_limiter_call_duration_seconds histogram\n" +
			latency("acquire", 4) + latency("keep", 0) + latency("release", 3) + latency("renew", 0) + latency("started", 1)
		require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(wantRelease),
			"streamsession_limiter_call_duration_seconds"))
	})
}

// background returns the exposition of the background errors counter with
// the given counts; every op that counts omits is 0.
func background(counts map[string]int) string {
	var b strings.Builder
	b.WriteString("# TYPE streamsession_background_errors_total counter\n")
	for _, op := range []string{"due", "finish_close", "forget", "renew", "shutdown_close", "timer_close"} {
		fmt.Fprintf(&b, "streamsession_background_errors_total{op=%q} %d\n", op, counts[op])
	}
	return b.String()
}

// failingDueStore is a MemoryStore whose Due fails: the timer loop's
// failure that no caller sees.
type failingDueStore struct{ *session.MemoryStore }

func (failingDueStore) Due(_ context.Context, _ time.Time, buf []session.Due) ([]session.Due, time.Time, error) {
	return buf[:0], time.Time{}, errors.New("test: store down")
}

// TestBackgroundErrors: a Manager whose store fails to report the sessions
// due counts one background error a second (the loop's retry), under
// op="due"; every other op stays at zero.
func TestBackgroundErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		met, err := metrics.New(reg, metrics.Config{})
		require.NoError(t, err)
		lim := limits.NewMemory(limits.MemoryConfig{})
		defer lim.Close()
		m, err := session.NewManager(session.Config{
			Limiter: lim, Avatars: testAvatars, Hooks: met.SessionHooks(),
			Store: failingDueStore{session.NewMemoryStore(session.MemoryStoreConfig{})},
		})
		require.NoError(t, err)
		defer m.Close(context.Background())
		synctest.Wait()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(background(map[string]int{"due": 3})),
			"streamsession_background_errors_total"))
	})
}

// gaugeValue reads streamsession_sessions{state}.
func gaugeValue(t *testing.T, g prometheus.Gatherer, state string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "streamsession_sessions" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == state {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("streamsession_sessions{state=%q} not found", state)
	return 0
}

// TestShutdownClosesGauge checks that sessions closed by Manager.Close move
// to closed in the gauge.
func TestShutdownClosesGauge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		reg := prometheus.NewRegistry()
		met, err := metrics.New(reg, metrics.Config{})
		require.NoError(t, err)
		lim := limits.NewMemory(limits.MemoryConfig{})
		defer lim.Close()
		m, err := session.NewManager(session.Config{Limiter: lim, Avatars: testAvatars, Hooks: met.SessionHooks()})
		require.NoError(t, err)
		acme := session.Account{Name: "acme", Plan: limits.PaidPlan}
		for i := range 3 {
			s, err := m.Create(ctx, acme, session.CreateOptions{})
			require.NoError(t, err)
			if i > 0 {
				_, err = m.Start(ctx, "acme", s.ID)
				require.NoError(t, err)
			}
		}
		assert.Equal(t, 1.0, gaugeValue(t, reg, "new"))
		assert.Equal(t, 2.0, gaugeValue(t, reg, "connecting"))
		require.NoError(t, m.Close(ctx))
		for _, s := range fsm.States() {
			want := 0.0
			if s == fsm.Closed {
				want = 3
			}
			assert.Equal(t, want, gaugeValue(t, reg, s.String()), s.String())
		}
	})
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		reg  bool
		cfg  metrics.Config
	}{
		{"nil registerer", false, metrics.Config{}},
		{"backend not UTF-8", true, metrics.Config{Backend: "\xff"}},
		{"buckets decreasing", true, metrics.Config{LimiterBuckets: []float64{0.1, 0.01}}},
		{"buckets repeated", true, metrics.Config{LimiterBuckets: []float64{0.1, 0.1}}},
		{"bucket NaN", true, metrics.Config{LimiterBuckets: []float64{math.NaN()}}},
		{"bucket -Inf", true, metrics.Config{LimiterBuckets: []float64{math.Inf(-1), 1}}},
		{"+Inf not last", true, metrics.Config{LimiterBuckets: []float64{math.Inf(1), 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			var r prometheus.Registerer
			if tt.reg {
				r = reg
			}
			met, err := metrics.New(r, tt.cfg)
			assert.Error(t, err)
			assert.Nil(t, met)
			n, err := testutil.GatherAndCount(reg)
			require.NoError(t, err)
			assert.Equal(t, 0, n, "nothing registered")
		})
	}
}

// TestNewTwiceOnOneRegistry checks that a second New fails with the
// registry's AlreadyRegisteredError, leaves nothing of its own behind and
// does not disturb the first.
func TestNewTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := metrics.New(reg, metrics.Config{})
	require.NoError(t, err)
	before, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)

	second, err := metrics.New(reg, metrics.Config{Backend: "redis"})
	var already prometheus.AlreadyRegisteredError
	require.ErrorAs(t, err, &already)
	assert.Nil(t, second)

	first.ServerHooks().SocketOpened(realtime.SocketInfo{})
	after, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, before, after)
	require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(
		"# TYPE streamsession_realtime_sockets gauge\nstreamsession_realtime_sockets 1\n"), "streamsession_realtime_sockets"))

	// The same collectors on a fresh registry are fine.
	_, err = metrics.New(prometheus.NewRegistry(), metrics.Config{})
	require.NoError(t, err)
}

func TestSocketsGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	met, err := metrics.New(reg, metrics.Config{})
	require.NoError(t, err)
	h := met.ServerHooks()
	h.Refused(server.Refusal{Endpoint: server.PathCreateToken, Account: session.Account{Name: "acme"}, Code: sserrors.CodeMovioAPIExceedRateLimit, Status: 429})
	h.Refused(server.Refusal{Endpoint: server.PathCreateToken, Account: session.Account{Name: "acme"}, Code: sserrors.CodeMovioAPIExceedRateLimit, Status: 429})
	h.Refused(server.Refusal{Endpoint: server.PathNew, Code: sserrors.CodeUnauthorized, Status: 401})
	require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(
		"# TYPE streamsession_request_refusals_total counter\nstreamsession_request_refusals_total{code=\"400112\"} 1\nstreamsession_request_refusals_total{code=\"400140\"} 2\n"),
		"streamsession_request_refusals_total"))
	h.AnnounceFailed(realtime.AnnounceFailure{SocketInfo: realtime.SocketInfo{Account: session.Account{Name: "acme"}}})
	h.AnnounceFailed(realtime.AnnounceFailure{})
	require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(
		"# TYPE streamsession_relay_announce_failures_total counter\nstreamsession_relay_announce_failures_total 2\n"),
		"streamsession_relay_announce_failures_total"))
	info := realtime.SocketInfo{Account: session.Account{Name: "acme"}, SessionHash: "0123456789ab"}
	steps := []struct {
		open bool
		want float64
	}{{true, 1}, {true, 2}, {false, 1}, {true, 2}, {false, 1}, {false, 0}}
	for i, s := range steps {
		if s.open {
			h.SocketOpened(info)
		} else {
			h.SocketClosed(info)
		}
		err := testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(fmt.Sprintf(
			"# TYPE streamsession_realtime_sockets gauge\nstreamsession_realtime_sockets %g\n", s.want)),
			"streamsession_realtime_sockets")
		require.NoError(t, err, "step %d", i)
	}
}

func TestLimiterFailOpenAndBackend(t *testing.T) {
	reg := prometheus.NewRegistry()
	met, err := metrics.New(reg, metrics.Config{Backend: "redis", LimiterBuckets: []float64{0.001, 0.01, math.Inf(1)}})
	require.NoError(t, err)
	met.LimiterFailOpen(errors.New("dial tcp: connection refused"))
	met.LimiterFailOpen(nil)
	h := met.SessionHooks()
	h.OnLimiter(session.LimiterRenew, 5*time.Millisecond, errors.New("timeout"))
	h.OnLimiter(session.LimiterRenew, 20*time.Millisecond, nil)
	h.OnLimiter(session.LimiterOp(9), time.Microsecond, nil) // outside the enum: its own label, no panic
	want := `
# TYPE streamsession_limiter_fail_open_total counter
streamsession_limiter_fail_open_total{backend="redis"} 2
# TYPE streamsession_limiter_errors_total counter
streamsession_limiter_errors_total{backend="redis",op="LimiterOp(9)"} 0
streamsession_limiter_errors_total{backend="redis",op="acquire"} 0
streamsession_limiter_errors_total{backend="redis",op="keep"} 0
streamsession_limiter_errors_total{backend="redis",op="release"} 0
streamsession_limiter_errors_total{backend="redis",op="renew"} 1
streamsession_limiter_errors_total{backend="redis",op="started"} 0
`
	require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(want),
		"streamsession_limiter_fail_open_total", "streamsession_limiter_errors_total"))

	buckets := func(op string) map[float64]uint64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		out := map[float64]uint64{}
		for _, mf := range mfs {
			if mf.GetName() != "streamsession_limiter_call_duration_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[1].GetValue() != op {
					continue
				}
				for _, b := range m.GetHistogram().GetBucket() {
					out[b.GetUpperBound()] = b.GetCumulativeCount()
				}
			}
		}
		return out
	}
	assert.Equal(t, map[float64]uint64{0.001: 0, 0.01: 1}, buckets("renew"))
	assert.Equal(t, map[float64]uint64{0.001: 1, 0.01: 1}, buckets("LimiterOp(9)"))
}

// TestOddEvents feeds events outside the lifecycle: nothing panics, and the
// gauge moves only for real states.
func TestOddEvents(t *testing.T) {
	reg := prometheus.NewRegistry()
	met, err := metrics.New(reg, metrics.Config{})
	require.NoError(t, err)
	h := met.SessionHooks()
	h.OnTransition(session.Event{From: fsm.State(42), To: fsm.New})
	h.OnTransition(session.Event{From: fsm.New, To: fsm.State(-1)})
	h.OnRefused(session.Account{}, 0)
	assert.Equal(t, 0.0, gaugeValue(t, reg, "new"))
	require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(
		transitions(map[string]int{"unknown>new": 1})+`streamsession_session_transitions_total{from="new",to="unknown"} 1
# TYPE streamsession_session_refusals_total counter
streamsession_session_refusals_total{code="0"} 1
`), "streamsession_session_transitions_total", "streamsession_session_refusals_total"))
}

// TestGaugeNeverNegative feeds what a node of a shared store hears: the
// end of sessions it never saw begin (created before it joined, or lost
// with the store's data), events repeated and out of order. The gauge
// counts each session once, in the state it was last seen in, and never
// goes below zero; the store's resets are counted.
func TestGaugeNeverNegative(t *testing.T) {
	reg := prometheus.NewRegistry()
	met, err := metrics.New(reg, metrics.Config{Backend: metrics.BackendRedis})
	require.NoError(t, err)
	h := met.SessionHooks()
	ev := func(id string, from, to fsm.State) {
		h.OnTransition(session.Event{SessionID: id, From: from, To: to, Reason: session.ReasonStoreLost})
	}
	// Sessions this node never saw created.
	ev("old1", fsm.Connected, fsm.Closing)
	ev("old1", fsm.Closing, fsm.Closed)
	ev("old1", fsm.Closed, fsm.Unknown)
	ev("old2", fsm.New, fsm.Closing)
	// One it saw, lost with the store: closing, closed, forgotten.
	ev("seen", fsm.Unknown, fsm.New)
	ev("seen", fsm.New, fsm.Connecting)
	ev("seen", fsm.Connecting, fsm.Closing)
	ev("seen", fsm.Closing, fsm.Closed)
	// The same forgotten twice (a late copy).
	ev("seen", fsm.Closed, fsm.Unknown)
	ev("seen", fsm.Closed, fsm.Unknown)
	for _, st := range []string{"new", "connecting", "connected", "closed"} {
		assert.Equal(t, 0.0, gaugeValue(t, reg, st), st)
	}
	assert.Equal(t, 1.0, gaugeValue(t, reg, "closing"), "old2")
	met.StoreReset()
	met.RedisWaitShort(0, nil)
	require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(`# TYPE streamsession_store_resets_total counter
streamsession_store_resets_total 1
# TYPE streamsession_redis_wait_short_total counter
streamsession_redis_wait_short_total 1
# TYPE streamsession_sessions_closed_total counter
streamsession_sessions_closed_total{reason="store_lost"} 2
# TYPE streamsession_limiter_fail_open_total counter
streamsession_limiter_fail_open_total{backend="redis"} 0
`), "streamsession_store_resets_total", "streamsession_redis_wait_short_total", "streamsession_sessions_closed_total", "streamsession_limiter_fail_open_total"))
}

// TestConcurrentHooks runs the hooks from many goroutines (under -race)
// and checks no update is lost.
func TestConcurrentHooks(t *testing.T) {
	reg := prometheus.NewRegistry()
	met, err := metrics.New(reg, metrics.Config{})
	require.NoError(t, err)
	h := met.SessionHooks()
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("s%d-%d", g, i)
				h.OnTransition(session.Event{SessionID: id, From: fsm.Unknown, To: fsm.New})
				h.OnTransition(session.Event{SessionID: id, From: fsm.New, To: fsm.Closing})
				h.OnRefused(session.Account{Name: "acme"}, sserrors.CodeConcurrentLimitReached)
				h.OnLimiter(session.LimiterAcquire, time.Millisecond, nil)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 0.0, gaugeValue(t, reg, "new"))
	assert.Equal(t, float64(goroutines*each), gaugeValue(t, reg, "closing"))
	n, err := testutil.GatherAndCount(reg, "streamsession_session_refusals_total")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(fmt.Sprintf(
		"# TYPE streamsession_session_refusals_total counter\nstreamsession_session_refusals_total{code=\"10007\"} %d\n",
		goroutines*each)), "streamsession_session_refusals_total"))
}

// TestLint runs promlint over every family and checks each has a help text.
func TestLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	met, err := metrics.New(reg, metrics.Config{})
	require.NoError(t, err)
	met.SessionHooks().OnRefused(session.Account{Name: "acme"}, sserrors.CodeConcurrentLimitReached) // so that every family has a sample
	met.ServerHooks().Refused(server.Refusal{Code: sserrors.CodeMovioAPIExceedRateLimit, Status: 429})
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	assert.Len(t, mfs, 14)
	for _, mf := range mfs {
		assert.True(t, strings.HasPrefix(mf.GetName(), metrics.Namespace+"_"), mf.GetName())
		assert.NotEmpty(t, mf.GetHelp(), mf.GetName())
	}
}

func TestRequestRefusals(t *testing.T) {
	reg := prometheus.NewRegistry()
	met, err := metrics.New(reg, metrics.Config{})
	require.NoError(t, err)
	h := met.ServerHooks()
	for _, code := range []sserrors.Code{sserrors.CodeMovioAPIExceedRateLimit, sserrors.CodeMovioAPIExceedRateLimit, sserrors.CodeUnauthorized} {
		h.Refused(server.Refusal{Endpoint: server.PathNew, Account: session.Account{Name: "acme"}, Code: code, Status: sserrors.StatusOf(sserrors.ErrUnauthorized)})
	}
	require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(
		"# TYPE streamsession_request_refusals_total counter\n"+
			"streamsession_request_refusals_total{code=\"400112\"} 1\n"+
			"streamsession_request_refusals_total{code=\"400140\"} 2\n"),
		"streamsession_request_refusals_total"))
}

func TestDrainStarted(t *testing.T) {
	reg := prometheus.NewRegistry()
	met, err := metrics.New(reg, metrics.Config{})
	require.NoError(t, err)
	want := func(drains, draining int) string {
		return fmt.Sprintf("# TYPE streamsession_drains_total counter\nstreamsession_drains_total %d\n"+
			"# TYPE streamsession_draining gauge\nstreamsession_draining %d\n", drains, draining)
	}
	names := []string{"streamsession_drains_total", "streamsession_draining"}
	require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(want(0, 0)), names...))
	met.DrainStarted()
	require.NoError(t, testutil.GatherAndCompare(noHelp{reg}, strings.NewReader(want(1, 1)), names...))
}
