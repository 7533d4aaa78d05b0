package guard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/browsertest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

const toolsHint = "npm ci --no-audit --no-fund --ignore-scripts --prefix js/guard/testdata (or .ci/run)"

// bundleSDKPage bundles testdata/sdkpage.js with HeyGen's SDK 2.1.0 and
// heygen.js for the browser, and returns the bundle. Without the pinned
// tools the test skips, or fails when CI is set.
func bundleSDKPage(t *testing.T) []byte {
	t.Helper()
	missing := func(why string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("the SDK browser test cannot run and CI is set: %s; run %s", why, toolsHint)
		}
		t.Skipf("skipping (with CI set this fails): %s; run %s", why, toolsHint)
	}
	pkg, err := os.ReadFile(filepath.Join("testdata", "node_modules", "@heygen", "streaming-avatar", "package.json"))
	if err != nil {
		missing("@heygen/streaming-avatar is not installed")
	}
	var meta struct{ Version string }
	if err := json.Unmarshal(pkg, &meta); err != nil || meta.Version != "2.1.0" {
		missing("@heygen/streaming-avatar " + meta.Version + " is installed, want 2.1.0")
	}
	esbuild, err := filepath.Abs(filepath.Join("testdata", "node_modules", ".bin", "esbuild"))
	require.NoError(t, err)
	if _, err := os.Stat(esbuild); err != nil {
		missing("esbuild is not installed")
	}
	out := filepath.Join(t.TempDir(), "sdk.js")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, esbuild, "sdkpage.js", "--bundle", "--format=esm", "--platform=browser",
		"--outfile="+out, "--log-level=warning")
	cmd.Dir = "testdata"
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, msg)
	}
	js, err := os.ReadFile(out)
	require.NoError(t, err)
	return js
}

const sdkPage = `<!doctype html><meta charset="utf-8"><title>guarded SDK</title><script type="module" src="/sdk.js"></script>`

// TestHeyGenSDKInBrowser drives HeyGen's SDK 2.1.0, wrapped by heygen.js, in
// headless Chromium against a real server: calls in the wrong state are
// refused with the server's errors, and the server never receives them.
func TestHeyGenSDKInBrowser(t *testing.T) {
	bundle := bundleSDKPage(t)
	ctx := browsertest.Start(t)

	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	lim := limits.NewMemory(limits.MemoryConfig{})
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars})
	require.NoError(t, err)
	api, err := server.New(server.Config{
		Manager:      mgr,
		Accounts:     server.AccountsByKey{liveKey: {Name: "guard", Plan: limits.PaidPlan}},
		Avatars:      avatars,
		TaskDuration: func(string) time.Duration { return 50 * time.Millisecond },
	})
	require.NoError(t, err)
	var mu sync.Mutex
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sdk.html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(sdkPage))
			return
		case "/sdk.js":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			w.Write(bundle)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			mu.Lock()
			calls = append(calls, r.Method+" "+r.URL.Path)
			mu.Unlock()
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, mgr.Close(ctx))
		assert.NoError(t, api.Shutdown(ctx))
		assert.NoError(t, lim.Close())
	})

	// The app's backend mints the token the SDK is built with.
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/streaming.create_token", strings.NewReader("{}"))
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", liveKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var minted struct {
		Data struct{ Token string } `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&minted))
	resp.Body.Close()
	require.NotEmpty(t, minted.Data.Token)

	runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = chromedp.Run(runCtx, chromedp.Navigate(srv.URL+"/sdk.html"))
	require.NoError(t, err)
	_, err = chromedp.Run(runCtx, chromedp.Poll[bool](`typeof window.runGuardedSDK === "function"`,
		chromedp.WithPollingInterval(20*time.Millisecond)))
	require.NoError(t, err, "the bundled page did not load")
	args, err := json.Marshal([]string{srv.URL, minted.Data.Token})
	require.NoError(t, err)
	raw, err := chromedp.Run(runCtx, chromedp.Evaluate[string](
		`window.runGuardedSDK(...`+string(args)+`).then(s => JSON.stringify(s))`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)

	type stepError struct {
		Name         string  `json:"name"`
		Code         *int    `json:"code"`
		Status       *int    `json:"status"`
		ResponseText *string `json:"responseText"`
	}
	var steps []struct {
		Step  string     `json:"step"`
		OK    bool       `json:"ok"`
		State *string    `json:"state"`
		Error *stepError `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &steps), raw)

	type want struct {
		state string // the guard's state after the step
		code  int    // 0: the step succeeded; else the guard refused it with this code
	}
	wants := []struct {
		step string
		want
	}{
		{"speak before newSession", want{"", 10006}},
		{"newSession", want{"new", 0}},
		{"speak in new", want{"new", 10001}},
		{"startSession", want{"connecting", 0}},
		{"speak in connecting", want{"connecting", 10002}},
		{"interrupt in connecting", want{"connecting", 10002}},
		{"connectWebSocket", want{"connected", 0}},
		{"session.state_updated connected", want{"connected", 0}},
		{"speak", want{"connected", 0}},
		{"interrupt", want{"connected", 0}},
		{"stopAvatar", want{"closed", 0}},
		{"stopAvatar twice", want{"closed", 10005}},
		{"speak after stop", want{"closed", 10005}},
	}
	messages := map[int]string{10001: "Session state wrong: new", 10002: "Session state wrong: connecting",
		10005: "Session state wrong: closed", 10006: "Session not found"}
	require.Len(t, steps, len(wants), raw)
	for i, w := range wants {
		s := steps[i]
		require.Equal(t, w.step, s.Step, "step %d", i)
		state := ""
		if s.State != nil {
			state = *s.State
		}
		assert.Equal(t, w.state, state, "%s: the guard's state", w.step)
		if w.code == 0 {
			assert.True(t, s.OK, "%s failed: %+v", w.step, s.Error)
			continue
		}
		if assert.False(t, s.OK, "%s: want a refusal", w.step) && assert.NotNil(t, s.Error) {
			assert.Equal(t, "GuardedAPIError", s.Error.Name, w.step)
			wantStatus := 400
			if w.code == 10006 {
				wantStatus = 404
			}
			if assert.NotNil(t, s.Error.Code, w.step) && assert.NotNil(t, s.Error.Status, w.step) && assert.NotNil(t, s.Error.ResponseText, w.step) {
				assert.Equal(t, w.code, *s.Error.Code, w.step)
				assert.Equal(t, wantStatus, *s.Error.Status, w.step)
				body, _ := json.Marshal(map[string]any{"code": w.code, "message": messages[w.code]})
				assert.JSONEq(t, string(body), *s.Error.ResponseText, "%s: the server's body", w.step)
			}
		}
	}

	// The refused calls never reached the server.
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{
		"POST /v1/streaming.create_token",
		"POST /v1/streaming.new",
		"POST /v1/streaming.start",
		"GET /v1/ws/streaming.chat",
		"POST /v1/streaming.task",
		"POST /v1/streaming.interrupt",
		"POST /v1/streaming.stop",
	}, calls, "the requests the server received")
}
