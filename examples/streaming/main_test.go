package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sserrors "github.com/streamsession/streamsession/errors"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes and reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

// startServer runs the server in-process on a free port and returns its
// base URL, its log and a function that stops it and returns its exit
// status.
func startServer(t *testing.T, args ...string) (base string, log *lockedBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	log = &lockedBuffer{}
	status := make(chan int, 1)
	go func() {
		status <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), pw, log)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var banner strings.Builder
	for sc.Scan() {
		banner.WriteString(sc.Text() + "\n")
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	require.NotEmpty(t, base, "no banner; log:\n%s", log.String())
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(pr)
		rest <- banner.String() + string(b)
	}()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			code = <-status
			<-rest
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return base, log, stop
}

func TestRunBadFlagsAndConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	tests := []struct {
		name   string
		args   []string
		status int
		want   string
	}{
		{"unknown flag", []string{"-nope"}, 2, "flag provided but not defined"},
		{"stray argument", []string{"serve"}, 2, `unexpected argument "serve"`},
		{"missing file", []string{"-config", filepath.Join(dir, "missing.json")}, 1, "missing.json"},
		{"unknown key", []string{"-config", write("unknown.json", `{"capacity": 5, "captivity": 1}`)}, 1, `unknown key "captivity"`},
		{"bad value", []string{"-config", write("bad.json", `{"capacity": 0}`)}, 1, "capacity: 0 is outside"},
		{"bad plan", []string{"-config", write("plan.json", `{"accounts": [{"api_key": "k", "name": "n", "plan": "gold"}]}`)}, 1, `accounts[0].plan: unknown plan "gold"`},
		{"address in use", []string{"-addr", "256.0.0.1:1"}, 1, "streaming:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut lockedBuffer
			status := run(context.Background(), tt.args, &out, &errOut)
			assert.Equal(t, tt.status, status)
			assert.Contains(t, errOut.String(), tt.want)
			assert.NotContains(t, out.String(), "listening on")
		})
	}
}

func TestServeDemoAndClient(t *testing.T) {
	base, log, stop := startServer(t)

	// The page and the JSON 404 outside /v1/.
	resp, err := http.Get(base + "/")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(page), "<title>streamsession console</title>")
	resp, err = http.Get(base + "/nope")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, `{"code":40051,"message":"Resource is not found"}`, string(body))

	// The client runs a whole session.
	var out, errOut lockedBuffer
	status := run(context.Background(), []string{"-client", "-url", base, "-key", "demo-trial-key", "-text", "Hi there"}, &out, &errOut)
	require.Equal(t, 0, status, "client output:\n%s\nerrors:\n%s", out.String(), errOut.String())
	transcript := out.String()
	for _, want := range []string{
		"==> POST /v1/streaming.create_token",
		"avatar Wayne_20240711 public=true status=ACTIVE",
		"is_paid=false, session_duration_limit=600s",
		"the guard refuses it without a network call: 10001 Session state wrong: new",
		"event session.state_updated: connected",
		"event avatar_start_talking",
		"interrupted=false",
		"interrupted=true",
		"the idle deadline starts again",
		"event session.state_updated: closing",
		"event session.state_updated: closed",
		"the server closed the socket: 1000 session closed",
		"==> done",
	} {
		assert.Contains(t, transcript, want)
	}

	// One refusal: an avatar that does not exist.
	req, err := http.NewRequest(http.MethodPost, base+"/v1/streaming.new", strings.NewReader(`{"avatar_id":"nobody"}`))
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", "demo-pro-key")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	// /metrics after the scripted session: the one session went through the
	// whole machine (the hooks run before the socket hears of a transition).
	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	scraped, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, want := range []string{
		`streamsession_session_transitions_total{from="new",to="connecting"} 1`,
		`streamsession_session_transitions_total{from="connecting",to="connected"} 1`,
		`streamsession_session_transitions_total{from="connected",to="closing"} 1`,
		`streamsession_session_transitions_total{from="closing",to="closed"} 1`,
		`streamsession_sessions{state="closed"} 1`,
		`streamsession_sessions{state="connected"} 0`,
		`streamsession_limiter_call_duration_seconds_count{backend="memory",op="acquire"} 1`,
		`streamsession_limiter_errors_total{backend="memory",op="acquire"} 0`,
		"# TYPE streamsession_realtime_sockets gauge",
		`streamsession_session_refusals_total{code="10012"} 1`,
	} {
		assert.Contains(t, string(scraped), want)
	}

	// streaming.new twice with one Idempotency-Key: one session.
	var answers []string
	for range 2 {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/streaming.new", strings.NewReader(`{}`))
		require.NoError(t, err)
		req.Header.Set("X-Api-Key", "demo-pro-key")
		req.Header.Set("Idempotency-Key", "order-42")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		answers = append(answers, string(body))
	}
	assert.Equal(t, answers[0], answers[1], "the same key and body replay the first answer")

	assert.Equal(t, 0, stop())
	logged := log.String()
	assert.Contains(t, logged, "transition")
	assert.Contains(t, logged, "stopped")
	id := regexp.MustCompile(`session ([0-9a-f]{32}): new`).FindStringSubmatch(transcript)
	require.NotNil(t, id)
	assert.NotContains(t, logged, id[1], "no raw session id in the log")
	assert.NotContains(t, logged, "demo-trial-key", "no API key in the log")
	assert.NotContains(t, logged, "sst_", "no token in the log")
}

func TestJSONLogsAndSeparateMetricsAddress(t *testing.T) {
	base, log, stop := startServer(t, "-log-format", "json", "-metrics-addr", "127.0.0.1:0")
	// /metrics is not on the API's address when -metrics-addr is given.
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, 0, stop())
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	require.NotEmpty(t, lines)
	for _, line := range lines {
		var v map[string]any
		assert.NoError(t, json.Unmarshal([]byte(line), &v), "not a JSON log line: %s", line)
	}
}

func TestClientReportsAPIErrors(t *testing.T) {
	base, _, _ := startServer(t)
	var out, errOut lockedBuffer
	status := run(context.Background(), []string{"-client", "-url", base, "-key", "wrong-key"}, &out, &errOut)
	assert.Equal(t, 1, status)
	assert.Contains(t, errOut.String(), "HTTP 401: 400112 Unauthorized")
}

// TestSignalShutdown builds the binary and stops it with SIGTERM while a
// client is connected: the client receives closing and closed, the process
// exits 0.
func TestSignalShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "streaming")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	sc := bufio.NewScanner(stdout)
	base := ""
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	go func() {
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})
	require.NotEmpty(t, base, "stderr:\n%s", stderr.String())

	call := func(path, body string, out any) {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("X-Api-Key", "demo-pro-key")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.NoError(t, sserrors.DecodeResponse(resp, out))
	}
	var created struct {
		SessionID        string `json:"session_id"`
		RealtimeEndpoint string `json:"realtime_endpoint"`
	}
	call("/v1/streaming.new", `{}`, &created)
	call("/v1/streaming.start", `{"session_id":"`+created.SessionID+`"}`, nil)
	ws, _, err := websocket.DefaultDialer.Dial(created.RealtimeEndpoint, nil)
	require.NoError(t, err)
	defer ws.Close()
	read := func() string {
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := ws.ReadMessage()
		require.NoError(t, err)
		return string(msg)
	}
	assert.JSONEq(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`, read())

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	assert.JSONEq(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"shutdown"}`, read())
	assert.JSONEq(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"shutdown"}`, read())
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)

	select {
	case err := <-exited:
		require.NoError(t, err, "exit status 0; stderr:\n%s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("the server did not exit; stderr:\n%s", stderr.String())
	}
	assert.Contains(t, stderr.String(), "shutting down")
}
