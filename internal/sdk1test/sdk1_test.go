package sdk1test_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/browsertest"
	"github.com/streamsession/streamsession/internal/netns"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// sdkVersion is the SDK release driven (testdata/package.json pins it).
const sdkVersion = "1.0.16"

const installHint = "npm ci --no-audit --no-fund --ignore-scripts --prefix internal/sdk1test/testdata"

// missing skips, or with CI set fails, a test that lacks a tool.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatal("the SDK 1.x browser test cannot run and CI is set: " + why)
	}
	t.Skip("skipping the SDK 1.x browser test (with CI set this fails): " + why)
}

// bundle builds the page's script with the pinned esbuild.
func bundle(t *testing.T) []byte {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		missing(t, "no node on PATH; install Node.js 20, then run %s", installHint)
	}
	pkg, err := os.ReadFile(filepath.Join("testdata", "node_modules", "@heygen", "streaming-avatar", "package.json"))
	if err != nil {
		missing(t, "@heygen/streaming-avatar is not installed; run %s (or .ci/run)", installHint)
	}
	var meta struct{ Version string }
	if err := json.Unmarshal(pkg, &meta); err != nil || meta.Version != sdkVersion {
		missing(t, "@heygen/streaming-avatar %q is installed, want %s; run %s", meta.Version, sdkVersion, installHint)
	}
	esbuild, err := filepath.Abs(filepath.Join("testdata", "node_modules", ".bin", "esbuild"))
	require.NoError(t, err)
	if _, err := os.Stat(esbuild); err != nil {
		missing(t, "esbuild is not installed; run %s", installHint)
	}
	outFile := filepath.Join(t.TempDir(), "sdk1.bundle.js")
	cmd := exec.Command(esbuild, "sdk1.js", "--bundle", "--format=iife", "--log-level=warning", "--outfile="+outFile)
	cmd.Dir = "testdata"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, out)
	}
	b, err := os.ReadFile(outFile)
	require.NoError(t, err)
	return b
}

const page = `<!doctype html><html><head><meta charset="utf-8"><title>sdk1</title>
<style>body{margin:0;padding:8px;background:#1b1b1b;color:#ddd;font:13px sans-serif}video{display:block;width:320px;height:240px}</style></head>
<body><div>HeyGen SDK 1.0.16 <code>createStartAvatar</code> ← streamsession media (synthetic avatar)</div>
<script src="/sdk1.js"></script></body></html>`

// docsScreenshot is the picture of the avatar in docs/media.md, rewritten
// by the test when STREAMSESSION_UPDATE_SCREENSHOT=1.
const docsScreenshot = "../../docs/media.png"

// shoot saves a screenshot of the page's video as testdata/artifacts/name
// (git ignores it).
func shoot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("body")))
	require.NoError(t, err)
	dir := filepath.Join("testdata", "artifacts")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
	t.Logf("wrote %s", filepath.Join(dir, name))
	return png
}

// result is what the page reports.
type result struct {
	Steps []struct {
		Name string `json:"name"`
		MS   int    `json:"ms"`
	} `json:"steps"`
	Events []struct {
		Type       string  `json:"type"`
		TaskID     string  `json:"task_id"`
		DurationMS float64 `json:"duration_ms"`
		MS         int     `json:"ms"`
	} `json:"events"`
	Frames    int      `json:"frames"`
	Decoded   int      `json:"decoded"`
	Dropped   int      `json:"dropped"`
	Width     int      `json:"width"`
	Height    int      `json:"height"`
	Tracks    []string `json:"tracks"`
	TaskID    string   `json:"taskId"`
	SessionID string   `json:"sessionId"`
	PeerState string   `json:"peerState"`
	Log       []string `json:"log"`
}

func TestSDK1CreateStartAvatar(t *testing.T) {
	if !netns.Enter(t, "the SDK 1.x browser test") {
		return
	}
	script := bundle(t)

	limiter := limits.NewMemory(limits.MemoryConfig{})
	defer limiter.Close()
	mgr, err := session.NewManager(session.Config{
		Limiter: limiter,
		Avatars: session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
	})
	require.NoError(t, err)
	var (
		mu     sync.Mutex
		events []session.Event
	)
	cancel := mgr.Subscribe(func(e session.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	var peerStates []string
	t0 := time.Now()
	eng, err := media.New(mgr, media.Config{UDPAddr: "127.0.0.1:0", Hooks: media.Hooks{
		PeerState: func(_ string, s webrtc.PeerConnectionState) {
			mu.Lock()
			peerStates = append(peerStates, fmt.Sprintf("%s at %v", s, time.Since(t0).Round(time.Millisecond)))
			mu.Unlock()
		},
	}})
	require.NoError(t, err)
	srv, err := server.New(server.Config{
		Manager:      mgr,
		Accounts:     server.AccountsByKey{"key-demo": {Name: "demo", Plan: limits.PaidPlan}},
		Avatars:      session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
		Media:        eng,
		TaskDuration: func(string) time.Duration { return 1500 * time.Millisecond },
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/v1/", srv)
	mux.HandleFunc("/sdk1.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(script)
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(page))
	})
	hs := httptest.NewServer(mux) // 127.0.0.1
	defer func() {
		hs.Close()
		srv.Close()
		ctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		require.NoError(t, mgr.Close(ctx))
		cancel()
		require.NoError(t, eng.Close())
	}()

	// The app's backend mints a token; the page's SDK uses it.
	req, _ := http.NewRequest(http.MethodPost, hs.URL+server.PathCreateToken, nil)
	req.Header.Set("X-Api-Key", "key-demo")
	resp, err := hs.Client().Do(req)
	require.NoError(t, err)
	var tok struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.NotEmpty(t, tok.Data.Token)

	ctx := browsertest.Start(t,
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-sync", true),
	)
	ctx, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(hs.URL+"/")))
	_, err = chromedp.Run(ctx, chromedp.Evaluate[result](fmt.Sprintf("runSDK1(%q, %q)", hs.URL, tok.Data.Token), chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	shoot(t, ctx, "sdk1-idle.png")
	_, err = chromedp.Run(ctx, chromedp.Evaluate[result]("speakSDK1()", chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	talking := shoot(t, ctx, "sdk1-talking.png")
	if os.Getenv("STREAMSESSION_UPDATE_SCREENSHOT") == "1" {
		require.NoError(t, os.WriteFile(docsScreenshot, talking, 0o644))
		t.Logf("updated %s", docsScreenshot)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[result]("finishSDK1()", chromedp.EvalAwaitPromise))
	require.NoError(t, err)

	for _, s := range out.Steps {
		t.Logf("page: %-18s at %5d ms", s.Name, s.MS)
	}
	t.Logf("page: tracks %v, %dx%d, %d frames counted by requestVideoFrameCallback, %d decoded, %d dropped (getVideoPlaybackQuality)",
		out.Tracks, out.Width, out.Height, out.Frames, out.Decoded, out.Dropped)
	for _, e := range out.Events {
		t.Logf("page: data channel event %s task %s duration_ms %.0f at %d ms", e.Type, e.TaskID, e.DurationMS, e.MS)
	}
	assert.Equal(t, []string{"audio", "video"}, out.Tracks, "one stream with both tracks")
	assert.GreaterOrEqual(t, out.Frames, 30)
	assert.Greater(t, out.Decoded, 0)
	assert.Equal(t, 320, out.Width)
	assert.Equal(t, 240, out.Height)
	if assert.Len(t, out.Events, 2) {
		assert.Equal(t, "avatar_start_talking", out.Events[0].Type)
		assert.Equal(t, "avatar_stop_talking", out.Events[1].Type)
		assert.Equal(t, out.TaskID, out.Events[0].TaskID)
		assert.Equal(t, out.TaskID, out.Events[1].TaskID)
		assert.GreaterOrEqual(t, out.Events[1].DurationMS, 1500.0)
	}
	assert.Equal(t, "closed", out.PeerState)

	// The session went new → connecting → connected (by media) → closed.
	deadline := time.Now().Add(10 * time.Second)
	var states []string
	var startAt, connectedAt time.Time
	var reason session.Reason
	for {
		mu.Lock()
		states, reason = states[:0], session.ReasonNone
		for _, e := range events {
			if e.SessionID != out.SessionID {
				continue
			}
			states = append(states, e.To.String())
			switch e.To {
			case fsm.Connecting:
				startAt = e.At
			case fsm.Connected:
				connectedAt = e.At
			case fsm.Closed:
				reason = e.Reason
			}
		}
		mu.Unlock()
		if reason != session.ReasonNone || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	t.Logf("server: peer states %v; session connecting at %v", peerStates, startAt.Sub(t0).Round(time.Millisecond))
	mu.Unlock()
	t.Logf("server: session states %v, closed with reason %s; start → connected %v", states, reason, connectedAt.Sub(startAt))
	assert.Equal(t, []string{"new", "connecting", "connected", "closing", "closed"}, states)
	assert.Equal(t, session.ReasonStop, reason,
		"stopAvatar closes its peer, then calls stop: within media.Config.ClosedGrace the session is stopped, not lost")
	assert.False(t, eng.Has(out.SessionID))
}
