package liveavatarsdk_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/liveavatar"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/redisstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	sdkVersion  = "0.0.18"
	installHint = "npm ci --no-audit --no-fund --ignore-scripts --prefix internal/liveavatarsdk/testdata"
	apiKey      = "key-acme"
)

var (
	accounts = server.AccountsByKey{apiKey: {Name: "acme", Plan: limits.Plan{Name: "pro", MaxConcurrent: 10}}}
	avatars  = session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	secret   = []byte("0123456789abcdef0123456789abcdef")
)

// findSDK returns the node binary, skipping (failing under CI) when node or
// the SDK is missing.
func findSDK(t *testing.T) string {
	t.Helper()
	missing := func(msg string) {
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set, so this is a failure)")
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node not found on PATH; install Node 20 or later to run the LiveAvatar SDK tests")
	}
	pkg, err := os.ReadFile(filepath.Join("testdata", "node_modules", "@heygen", "liveavatar-web-sdk", "package.json"))
	if err != nil || !bytes.Contains(pkg, []byte(`"version": "`+sdkVersion+`"`)) {
		missing("@heygen/liveavatar-web-sdk " + sdkVersion + " is not installed; run: " + installHint)
	}
	return node
}

// calls records the requests a node received: "METHOD path auth".
type calls struct {
	mu  sync.Mutex
	log []string
}

func (c *calls) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := "-"
		switch {
		case r.Header.Get("X-Api-Key") != "":
			auth = "X-API-KEY"
		case strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "):
			auth = "Bearer"
		}
		rec := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		c.mu.Lock()
		c.log = append(c.log, fmt.Sprintf("%s %s %s → %d", r.Method, r.URL.Path, auth, rec.status))
		c.mu.Unlock()
	})
}

func (c *calls) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log...)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Hijack lets the LITE socket's upgrade through the recorder (101).
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	s.status = http.StatusSwitchingProtocols
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

// node is one service node: the Streaming API and LiveAvatar over one
// Manager, served on loopback.
type node struct {
	mgr   *session.Manager
	http  *httptest.Server
	calls *calls
}

type nodeParts struct {
	store   session.Store
	limiter limits.Limiter
	baseURL string // the ws_url base, when another node serves the sockets
}

// newNode builds a node on an httptest server not yet started, so that
// its address is known before another node is configured with it.
func newNode(t *testing.T, p nodeParts) *node {
	t.Helper()
	lim := p.limiter
	if lim == nil {
		mem := limits.NewMemory(limits.MemoryConfig{})
		t.Cleanup(func() { mem.Close() })
		lim = mem
	}
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars, Store: p.store})
	require.NoError(t, err)
	srv, err := server.New(server.Config{Manager: mgr, Accounts: accounts, Avatars: avatars, Secret: secret})
	require.NoError(t, err)
	la, err := liveavatar.New(liveavatar.Config{Manager: mgr, Accounts: accounts, Secret: secret, Allow: srv.Allow, BaseURL: p.baseURL})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/v1/sessions", la)
	mux.Handle("/v1/sessions/", la)
	mux.Handle("/", srv)
	n := &node{mgr: mgr, calls: &calls{}}
	n.http = httptest.NewServer(n.calls.wrap(mux))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = mgr.Close(ctx)
		_ = la.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
		n.http.Close()
	})
	return n
}

// post makes one API-key call and returns the envelope's data.
func post(t *testing.T, base, path string, body any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest("POST", base+path, bytes.NewReader(raw))
	require.NoError(t, err)
	req.Header.Set("X-API-KEY", apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var env struct {
		Code int             `json:"code"`
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(b, &env), "%s", b)
	require.Equal(t, liveavatar.CodeSuccess, env.Code, "%s %s: %s", path, body, b)
	return env.Data
}

// step is one line of the script.
type step struct {
	Step string         `json:"step"`
	T    int64          `json:"t"`
	Raw  string         `json:"-"`
	F    map[string]any `json:"-"`
}

// runScript runs lite.mjs against api (tokens minted there), with stops
// from the server side sent through stopVia, and returns its steps.
func runScript(t *testing.T, nodeBin, api, stopVia string) []step {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "--experimental-websocket", "--no-warnings", "lite.mjs", api)
	cmd.Dir = "testdata"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	var steps []step
	var lastID string
	answer := func(v any) {
		b, _ := json.Marshal(v)
		_, err := stdin.Write(append(b, '\n'))
		require.NoError(t, err)
	}
	mint := func(body map[string]any) {
		var tok struct {
			SessionID    string `json:"session_id"`
			SessionToken string `json:"session_token"`
		}
		require.NoError(t, json.Unmarshal(post(t, api, liveavatar.PathToken, body), &tok))
		lastID = tok.SessionID
		answer(map[string]string{"token": tok.SessionToken})
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var s step
		if json.Unmarshal([]byte(line), &s) != nil || s.Step == "" {
			t.Logf("script: %s", line)
			continue
		}
		s.Raw = line
		require.NoError(t, json.Unmarshal([]byte(line), &s.F))
		steps = append(steps, s)
		t.Logf("%5d ms  %s", s.T, strings.TrimPrefix(line, `{"step":`))
		if s.Step != "ask" {
			continue
		}
		switch s.F["what"] {
		case "LITE token":
			mint(map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711", "is_sandbox": false})
		case "FULL token":
			mint(map[string]any{"mode": "FULL", "avatar_id": "Wayne_20240711", "avatar_persona": map[string]any{"language": "en"}})
		case "server-side stop":
			post(t, stopVia, liveavatar.PathStop, map[string]any{"session_id": lastID, "reason": "IDLE_TIMEOUT"})
			answer(map[string]bool{"stopped": true})
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node: %v\nstderr:\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("the SDK's console (stderr):\n%s", stderr.String())
	}
	return steps
}

// script is the steps of one run, with lookups.
type script []step

func (s script) find(t *testing.T, name string, from int) (int, step) {
	t.Helper()
	for i := from; i < len(s); i++ {
		if s[i].Step == name {
			return i, s[i]
		}
	}
	t.Fatalf("no step %q after step %d", name, from)
	return 0, step{}
}

// messages returns the socket messages of one part, in order.
func (s script) messages(part string) []map[string]any {
	var out []map[string]any
	for _, st := range s {
		if st.Step == part+": socket message" {
			out = append(out, st.F["message"].(map[string]any))
		}
	}
	return out
}

func (s script) steps(prefix string) []step {
	var out []step
	for _, st := range s {
		if strings.HasPrefix(st.Step, prefix) {
			out = append(out, st)
		}
	}
	return out
}

// checkRun checks a run of lite.mjs.
func checkRun(t *testing.T, steps script, sessions func(id string) session.Info) {
	for _, st := range steps {
		assert.NotEqual(t, "unhandled rejection", st.Step, "the SDK left a promise rejected: %s", st.Raw)
	}
	// 1. The whole LITE session.
	_, c := steps.find(t, "constructed", 0)
	assert.Equal(t, "LITE", c.F["mode"], "the SDK read the mode from the token")
	i, started := steps.find(t, "started", 0)
	assert.Equal(t, "CONNECTED", started.F["state"])
	assert.Nil(t, started.F["maxSessionDuration"])
	liteID, _ := started.F["sessionId"].(string)

	msgs := steps.messages("lite")
	require.GreaterOrEqual(t, len(msgs), 5, "socket messages: %v", msgs)
	types := make([]string, len(msgs))
	for k, m := range msgs {
		types[k] = fmt.Sprint(m["type"], " ", m["state"])
	}
	assert.Equal(t, []string{
		"session.state_updated connecting", "session.state_updated connected",
		"agent.speak_started <nil>", "agent.speak_ended <nil>",
		"agent.speak_started <nil>", "agent.speak_interrupted <nil>",
	}, types[:min(6, len(types))])
	first, second := msgs[2]["event_id"], msgs[4]["event_id"]
	assert.Equal(t, first, msgs[3]["event_id"])
	assert.Equal(t, second, msgs[5]["event_id"])
	assert.NotEqual(t, first, second)
	_, ret := steps.find(t, "repeatAudio", i)
	t.Logf("repeatAudio returned %v; the wire carried %v (the SDK regenerates the id)", ret.F["returned_id"], first)

	_, sdkStarted := steps.find(t, "lite: avatar.speak_started", i)
	_, sdkEnded := steps.find(t, "lite: avatar.speak_ended", i)
	assert.Equal(t, first, sdkStarted.F["event_id"])
	assert.Equal(t, first, sdkEnded.F["event_id"])
	spoke := time.Duration(sdkEnded.T-sdkStarted.T) * time.Millisecond
	t.Logf("1.4 s of audio: speak_started at %d ms, speak_ended at %d ms (%v)", sdkStarted.T, sdkEnded.T, spoke)
	assert.GreaterOrEqual(t, spoke, 1300*time.Millisecond)
	assert.Less(t, spoke, 4*time.Second)

	_, disc := steps.find(t, "lite: disconnected", i)
	assert.Equal(t, "CLIENT_INITIATED", disc.F["reason"])
	info := sessions(liteID)
	assert.Equal(t, "closed", info.State.String())
	assert.Equal(t, "USER_CLOSED", liveavatar.CloseReason(info.Reason))

	// 2. The failed start.
	k, full := steps.find(t, "constructed", i+1)
	assert.Equal(t, "FULL", full.F["mode"])
	_, failed := steps.find(t, "start failed", k)
	assert.Equal(t, "FULL mode needs a LiveKit server, which this service does not run; mint a LITE token", failed.F["message"])
	assert.EqualValues(t, 4501, failed.F["errorCode"])
	assert.EqualValues(t, 501, failed.F["status"])
	_, fd := steps.find(t, "full: disconnected", k)
	assert.Equal(t, "SESSION_START_FAILED", fd.F["reason"])

	// 3. The server-side close.
	j, sc := steps.find(t, "started", k)
	scID, _ := sc.F["sessionId"].(string)
	_, closed := steps.find(t, "server-close: socket closed", j)
	assert.EqualValues(t, 1000, closed.F["code"])
	var states []string
	for _, m := range steps.messages("server-close") {
		states = append(states, fmt.Sprint(m["state"], " ", m["reason"]))
	}
	assert.Equal(t, []string{"connecting <nil>", "connected <nil>", "closing USER_CLOSED", "closed USER_CLOSED"}, states,
		"IDLE_TIMEOUT sent by a caller is recorded as a stop")
	_, sd := steps.find(t, "server-close: disconnected", j)
	assert.Equal(t, "UNKNOWN_REASON", sd.F["reason"])
	assert.Equal(t, "closed", sessions(scID).State.String())
	steps.find(t, "done", j)
}

// wantCalls checks the requests the SDK made (the tokens and the
// server-side stop are the test's own).
func wantCalls(t *testing.T, got []string) {
	t.Helper()
	assert.Equal(t, []string{
		"POST /v1/sessions/token X-API-KEY → 200",
		"POST /v1/sessions/start Bearer → 201",
		"GET /v1/sessions/{id}/ws - → 101",
		"POST /v1/sessions/keep-alive Bearer → 200",
		"POST /v1/sessions/stop Bearer → 200",
		"POST /v1/sessions/token X-API-KEY → 200",
		"POST /v1/sessions/start Bearer → 501",
		"POST /v1/sessions/stop Bearer → 200",
		"POST /v1/sessions/token X-API-KEY → 200",
		"POST /v1/sessions/start Bearer → 201",
		"GET /v1/sessions/{id}/ws - → 101",
		"POST /v1/sessions/stop X-API-KEY → 200",
		"POST /v1/sessions/stop Bearer → 200",
	}, got)
}

// normalize replaces session ids in socket paths.
func normalize(calls []string) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		if strings.HasPrefix(c, "GET /v1/sessions/") && strings.Contains(c, "/ws ") {
			_, rest, _ := strings.Cut(c, "/ws ")
			c = "GET /v1/sessions/{id}/ws " + rest
		}
		out[i] = c
	}
	return out
}

// TestSDKOneNode runs the SDK against one node.
func TestSDKOneNode(t *testing.T) {
	nodeBin := findSDK(t)
	n := newNode(t, nodeParts{})
	steps := runScript(t, nodeBin, n.http.URL, n.http.URL)
	checkRun(t, steps, func(id string) session.Info {
		info, err := n.mgr.Get(context.Background(), "acme", id)
		require.NoError(t, err)
		return info
	})
	wantCalls(t, normalize(n.calls.all()))
}

// TestSDKTwoNodesOnRedis runs the SDK with its REST calls on node A and its
// LITE socket on node B (A's ws_url names B), sessions and slots in a real
// redis-server, and the server-side stop through B.
func TestSDKTwoNodesOnRedis(t *testing.T) {
	nodeBin := findSDK(t)
	rs := redistest.Start(t)
	parts := func() nodeParts {
		lim, err := redislimiter.New(rs.Client(), redislimiter.Config{Prefix: "sdk"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = lim.Close() })
		store, err := redisstore.New(rs.Client(), redisstore.Config{Prefix: "sdk"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = store.Close() })
		return nodeParts{store: store, limiter: lim}
	}
	b := newNode(t, parts())
	pa := parts()
	pa.baseURL = b.http.URL
	a := newNode(t, pa)

	steps := runScript(t, nodeBin, a.http.URL, b.http.URL)
	checkRun(t, steps, func(id string) session.Info {
		info, err := b.mgr.Get(context.Background(), "acme", id)
		require.NoError(t, err)
		return info
	})
	var onA, onB []string
	for _, c := range normalize(a.calls.all()) {
		onA = append(onA, "A "+c)
	}
	for _, c := range normalize(b.calls.all()) {
		onB = append(onB, "B "+c)
	}
	assert.Equal(t, []string{"B GET /v1/sessions/{id}/ws - → 101", "B GET /v1/sessions/{id}/ws - → 101", "B POST /v1/sessions/stop X-API-KEY → 200"}, onB)
	assert.NotContains(t, strings.Join(onA, "\n"), "/ws")
	assert.Len(t, onA, 10)
}
