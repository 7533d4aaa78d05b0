package observe_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// countingWriter counts the bytes written to it.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// rssMiB is this process's resident memory.
func rssMiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			require.NoError(t, err)
			return n >> 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestChurnProbe is a probe run by hand (STREAMSESSION_CHURN_PROBE=20s
// go test -run TestChurnProbe -v ./observe/): one trial account creates
// and stops sessions over HTTP as fast as 3 clients can for the given
// time, against a node logging as a production node should (routine
// lines bounded per account, through an AsyncHandler). It reports the
// sessions churned, the growth of RSS over the whole run and over its
// second half, and the bytes logged, and checks them against 64 MB, 8 MB
// and 20 MB.
func TestChurnProbe(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("STREAMSESSION_CHURN_PROBE"))
	if err != nil || d <= 0 {
		t.Skip("a probe: set STREAMSESSION_CHURN_PROBE to a duration")
	}
	ctx := context.Background()
	var logged countingWriter
	async := observe.NewAsyncHandler(slog.NewJSONHandler(&logged, nil), observe.AsyncConfig{})
	limited := observe.NewRoutineLimiter(async, observe.RoutineConfig{})
	logger := slog.New(limited)
	const apiKey = "sk-trial-3f9a1c7e5b2d4068"
	lim := limits.NewMemory(limits.MemoryConfig{})
	defer lim.Close()
	logHooks := observe.SessionHooks(logger)
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: testAvatars,
		Hooks: session.Hooks{OnRefused: logHooks.OnRefused, OnLimiter: logHooks.OnLimiter}})
	require.NoError(t, err)
	defer mgr.Close(ctx)
	mgr.Subscribe(logHooks.OnTransition)
	srv, err := server.New(server.Config{
		Manager:  mgr,
		Accounts: server.AccountsByKey{apiKey: {Name: "trial", Plan: limits.TrialPlan}},
		Avatars:  testAvatars,
		Hooks:    observe.ServerHooks(logger),
	})
	require.NoError(t, err)
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := client{t, hs.URL}
	withKey := http.Header{"X-Api-Key": {apiKey}}

	start := time.Now()
	rss0 := rssMiB(t)
	var rssHalf int
	var churned atomic.Int64
	var wg sync.WaitGroup
	for range 3 { // the trial plan's concurrency
		wg.Go(func() {
			for time.Since(start) < d {
				var created struct {
					SessionID string `json:"session_id"`
				}
				if err := c.post(server.PathNew, withKey, `{}`, &created); err != nil {
					continue
				}
				if err := c.post(server.PathStop, withKey, `{"session_id":"`+created.SessionID+`"}`, nil); err == nil {
					churned.Add(1)
				}
			}
		})
	}
	time.Sleep(d / 2)
	rssHalf = rssMiB(t)
	wg.Wait()
	rssEnd := rssMiB(t)
	require.NoError(t, async.Close(ctx))
	mib := float64(logged.n.Load()) / (1 << 20)
	t.Logf("%v of churn: %d sessions created and stopped; RSS %d → %d → %d MiB (grew %d, %d in the second half); logs %.2f MiB (%d routine lines suppressed, %d records dropped)",
		d, churned.Load(), rss0, rssHalf, rssEnd, rssEnd-rss0, rssEnd-rssHalf, mib, limited.Suppressed(), async.Dropped())
	assert.Less(t, rssEnd-rss0, 64)
	assert.Less(t, rssEnd-rssHalf, 8)
	assert.Less(t, mib, 20.0)
}
