package observe_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/fakeclock"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// stalledPipe returns the write end of a pipe nobody reads; the cleanup
// closes the read end, which fails the writes blocked on it.
func stalledPipe(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() {
		r.Close()
		w.Close()
	})
	return w
}

// closeAsync closes h within 5 s; the caller has unblocked its writer.
func closeAsync(t *testing.T, h *observe.AsyncHandler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, h.Close(ctx))
}

// TestAsyncHandlerDeliversInOrder: with a reader that keeps up, every
// record arrives, in order, with the attributes and groups of the derived
// handlers, and nothing is dropped.
func TestAsyncHandlerDeliversInOrder(t *testing.T) {
	var buf syncBuffer
	// The buffer holds every record: this test is about order.
	h := observe.NewAsyncHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime}), observe.AsyncConfig{Buffer: 128})
	logger := slog.New(h)
	derived := logger.With("node", "n1").WithGroup("g")
	for i := range 100 {
		if i%2 == 0 {
			logger.Info("line", "i", i)
		} else {
			derived.Info("line", "i", i)
		}
	}
	closeAsync(t, h)
	assert.Equal(t, uint64(0), h.Dropped())
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 100)
	for i, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		if i%2 == 0 {
			assert.Equal(t, float64(i), m["i"])
		} else {
			assert.Equal(t, "n1", m["node"])
			assert.Equal(t, map[string]any{"i": float64(i)}, m["g"])
		}
	}

	logger.Info("after close")
	assert.Equal(t, uint64(1), h.Dropped(), "a record after Close is dropped and counted")
}

// blockedWriter is a writer whose Write waits until release is closed,
// then fails.
type blockedWriter struct{ release chan struct{} }

func (w blockedWriter) Write([]byte) (int, error) {
	<-w.release
	return 0, os.ErrClosed
}

// TestAsyncHandlerNeverBlocks: with a writer that never returns, 3,000
// records are each taken without waiting; what the buffer cannot hold is
// dropped and counted, in Dropped and in the metric; Close waits no longer
// than its context.
func TestAsyncHandlerNeverBlocks(t *testing.T) {
	w := blockedWriter{release: make(chan struct{})}
	const buffer = 16
	h := observe.NewAsyncHandler(slog.NewJSONHandler(w, nil), observe.AsyncConfig{Buffer: buffer})
	logger := slog.New(h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 3000 {
			logger.Info("request refused", "i", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("logging blocked on a stalled writer")
	}
	// The buffer holds 16, and the goroutine may have taken one to the
	// writer before it filled.
	assert.GreaterOrEqual(t, h.Dropped(), uint64(3000-buffer-1))
	assert.LessOrEqual(t, h.Dropped(), uint64(3000-buffer))
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(h.Collector()))
	assert.Equal(t, float64(h.Dropped()), testutil.ToFloat64(h.Collector()))
	n, err := testutil.GatherAndCount(reg, "streamsession_log_records_dropped_total")
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, h.Close(ctx), context.DeadlineExceeded, "the writer is still stalled")
	close(w.release) // the goroutine drains and ends
	closeAsync(t, h)
}

// stalledServer runs a server.Server whose server and session hooks log
// on logger.
func stalledServer(t *testing.T, logger *slog.Logger) (*httptest.Server, string) {
	t.Helper()
	const apiKey = "sk-live-acme-3f9a1c7e5b2d4068"
	lim := limits.NewMemory(limits.MemoryConfig{})
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: testAvatars, Hooks: observe.SessionHooks(logger)})
	require.NoError(t, err)
	srv, err := server.New(server.Config{
		Manager:  mgr,
		Accounts: server.AccountsByKey{apiKey: {Name: "acme", Plan: limits.PaidPlan}},
		Avatars:  testAvatars,
		Hooks:    observe.ServerHooks(logger),
	})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		mgr.Close(context.Background())
		lim.Close()
	})
	return hs, apiKey
}

// refuseMany sends n refused requests (a wrong API key) from 8 clients and
// returns the slowest answer; a request not answered within 2 s counts as
// 2 s and ends its client.
func refuseMany(t *testing.T, base string, n int) time.Duration {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	var mu sync.Mutex
	var slowest time.Duration
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for range n / 8 {
				start := time.Now()
				req, _ := http.NewRequest(http.MethodGet, base+server.PathList, nil)
				req.Header.Set("X-Api-Key", "sk-wrong-"+string(rune('a'+w)))
				resp, err := client.Do(req)
				d := time.Since(start)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusUnauthorized {
						err = errUnexpected
					}
				}
				mu.Lock()
				if err != nil {
					d = 2 * time.Second
				}
				slowest = max(slowest, d)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return slowest
}

var errUnexpected = &json.UnsupportedValueError{Str: "unexpected status"}

// TestStalledLogServesRequests: with the hooks logging through an
// AsyncHandler onto a pipe nobody reads, 3,000
// refused requests are each answered within 2 s, and a new socket gets
// its first event within 2 s. Logging onto the same pipe synchronously
// stalls the requests: the check can fail.
func TestStalledLogServesRequests(t *testing.T) {
	t.Run("async", func(t *testing.T) {
		w := stalledPipe(t)
		// A buffer smaller than the default, so that it fills.
		async := observe.NewAsyncHandler(slog.NewJSONHandler(w, nil), observe.AsyncConfig{Buffer: 256})
		t.Cleanup(func() { w.Close(); closeAsync(t, async) })
		hs, apiKey := stalledServer(t, slog.New(async))

		slowest := refuseMany(t, hs.URL, 3000)
		t.Logf("3000 refusals with a stalled log: slowest answer %v; records dropped %d", slowest, async.Dropped())
		assert.Less(t, slowest, 2*time.Second)
		assert.Positive(t, async.Dropped())

		c := client{t, hs.URL}
		withKey := http.Header{"X-Api-Key": {apiKey}}
		var created struct {
			SessionID        string `json:"session_id"`
			RealtimeEndpoint string `json:"realtime_endpoint"`
		}
		require.NoError(t, c.post(server.PathNew, withKey, `{}`, &created))
		require.NoError(t, c.post(server.PathStart, withKey, `{"session_id":"`+created.SessionID+`"}`, nil))
		start := time.Now()
		ws, resp, err := websocket.DefaultDialer.Dial(created.RealtimeEndpoint, nil)
		require.NoError(t, err)
		resp.Body.Close()
		defer ws.Close()
		ws.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, msg, err := ws.ReadMessage()
		require.NoError(t, err)
		assert.Contains(t, string(msg), `"state":"connected"`)
		t.Logf("first socket event after %v", time.Since(start))
	})
	t.Run("synchronous stalls", func(t *testing.T) {
		w := stalledPipe(t)
		hs, _ := stalledServer(t, slog.New(slog.NewJSONHandler(w, nil)))
		slowest := refuseMany(t, hs.URL, 3000)
		assert.GreaterOrEqual(t, slowest, 2*time.Second, "a synchronous log on a stalled pipe holds requests")
		w.Close() // release the handlers blocked on the pipe
	})
}

// TestRoutineLimiter: routine lines are bounded per account and window;
// the next window starts with one line per account saying how many were
// suppressed; warnings and other lines always pass.
func TestRoutineLimiter(t *testing.T) {
	var buf syncBuffer
	clock := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	h := observe.NewRoutineLimiter(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime}),
		observe.RoutineConfig{PerWindow: 3, Window: time.Second, Now: clock.Now})
	logger := slog.New(h)
	for range 5 {
		logger.Info(observe.MsgRequestRefused, "account", "a")
		logger.Info(observe.MsgTransition, "account", "b")
		logger.Info("listening", "account", "a")
		logger.Warn(observe.MsgRequestRefused, "account", "a", "status", 503)
	}
	assert.Equal(t, uint64(4), h.Suppressed())
	count := func(s, sub string) int { return strings.Count(s, sub) }
	got := buf.String()
	assert.Equal(t, 3, count(got, `"level":"INFO","msg":"request refused","account":"a"`))
	assert.Equal(t, 3, count(got, `"msg":"session transition","account":"b"`))
	assert.Equal(t, 5, count(got, `"msg":"listening"`))
	assert.Equal(t, 5, count(got, `"level":"WARN"`))
	assert.NotContains(t, got, observe.MsgSuppressed)

	clock.Advance(time.Second)
	logger.Info(observe.MsgRequestRefused, "account", "c")
	got = buf.String()
	assert.Contains(t, got, `{"level":"INFO","msg":"log lines suppressed","account":"a","suppressed":2,"window":1000000000}`)
	assert.Contains(t, got, `{"level":"INFO","msg":"log lines suppressed","account":"b","suppressed":2,"window":1000000000}`)
	assert.True(t, strings.HasSuffix(got, `{"level":"INFO","msg":"request refused","account":"c"}`+"\n"), got)

	// A new window: each account has its bound again.
	for range 3 {
		logger.Info(observe.MsgRequestRefused, "account", "a")
	}
	assert.Equal(t, uint64(4), h.Suppressed())
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(h.Collector()))
	assert.Equal(t, 4.0, testutil.ToFloat64(h.Collector()))
}
