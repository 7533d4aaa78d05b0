package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
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
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
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
	// A loopback port this test holds, so that the server cannot listen on it.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { taken.Close() })
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
		{"address in use", []string{"-addr", taken.Addr().String()}, 1, "address already in use"},
		{"bad media udp", []string{"-media-udp", "localhost:0"}, 2, "-media-udp"},
		{"bad media public ip", []string{"-media-public-ip", "nat.example.com"}, 2, "-media-public-ip"},
		{"bad media node url", []string{"-media-node-url", "10.0.0.5:8080"}, 2, "-media-node-url"},
		{"media with redis on every interface", []string{"-addr", "0.0.0.0:0", "-redis", "127.0.0.1:1"}, 1, "-media-node-url"},
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

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the command once per test run, in a directory TestMain
// removes.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "streaming-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "streaming")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// proc is the server running as a separate process.
type proc struct {
	cmd    *exec.Cmd
	base   string
	stderr *lockedBuffer
	exited chan error
}

// startBinary runs the built server on a free port with args.
func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			p.base = m[1]
			break
		}
	}
	go func() {
		io.Copy(io.Discard, stdout)
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.exited
		}
	})
	require.NotEmpty(t, p.base, "stderr:\n%s", p.stderr.String())
	return p
}

// call makes an API call with demo-pro-key and decodes the answer's data.
func (p *proc) call(t *testing.T, path, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.base+path, strings.NewReader(body))
	req.Header.Set("X-Api-Key", "demo-pro-key")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, sserrors.DecodeResponse(resp, out))
}

type created struct {
	SessionID        string `json:"session_id"`
	RealtimeEndpoint string `json:"realtime_endpoint"`
}

// connected creates and starts a session and opens its realtime socket,
// which has received connected.
func (p *proc) connected(t *testing.T) (created, *websocket.Conn) {
	t.Helper()
	var c created
	p.call(t, "/v1/streaming.new", `{}`, &c)
	p.call(t, "/v1/streaming.start", `{"session_id":"`+c.SessionID+`"}`, nil)
	ws, _, err := websocket.DefaultDialer.Dial(c.RealtimeEndpoint, nil)
	require.NoError(t, err)
	t.Cleanup(func() { ws.Close() })
	assert.JSONEq(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`, readWS(t, ws))
	return c, ws
}

func readWS(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	require.NoError(t, err)
	return string(msg)
}

// TestSignalShutdown builds the binary and stops it with SIGTERM while a
// client is connected: the client receives closing and closed, the process
// exits 0.
func TestSignalShutdown(t *testing.T) {
	p := startBinary(t)
	_, ws := p.connected(t)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.JSONEq(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"shutdown"}`, readWS(t, ws))
	assert.JSONEq(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"shutdown"}`, readWS(t, ws))
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)

	select {
	case err := <-p.exited:
		require.NoError(t, err, "exit status 0; stderr:\n%s", p.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("the server did not exit; stderr:\n%s", p.stderr.String())
	}
	assert.Contains(t, p.stderr.String(), "shutting down")
}

// closedWithin reads from conn until it is closed by the server (EOF or a
// reset) and returns when that happened, or fails after within.
func closedWithin(t *testing.T, what string, conn net.Conn, within time.Duration) <-chan time.Time {
	t.Helper()
	at := make(chan time.Time, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(within))
		_, err := io.Copy(io.Discard, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: still open after %v", what, within)
		}
		at <- time.Now()
	}()
	return at
}

// TestShutdownNotHeldHostage stops the binary with SIGTERM while four
// connections are present: one that has sent nothing, an idle keep-alive
// one, one with a request in flight whose body never arrives, and an open
// realtime socket. The session is closed (reason shutdown) and its socket
// gets closing, closed and a close frame; the quiet connections are closed
// at once, the slow request's after -request-grace; the process exits 0
// well within -drain-timeout.
func TestShutdownNotHeldHostage(t *testing.T) {
	const grace = time.Second
	p := startBinary(t, "-request-grace", grace.String(), "-drain-timeout", "10s")
	_, ws := p.connected(t)
	addr := strings.TrimPrefix(p.base, "http://")
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	silent := dial()

	idle := dial()
	_, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	idleReader := bufio.NewReader(idle)
	resp, err := http.ReadResponse(idleReader, nil)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, resp.Close, "the connection is kept alive")

	// The slow request: the server's 100 Continue proves its handler is
	// reading the body, so the request is in flight; the body never comes.
	slow := dial()
	_, err = io.WriteString(slow, "POST /v1/streaming.task HTTP/1.1\r\nHost: x\r\nX-Api-Key: demo-pro-key\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
	require.NoError(t, err)
	slowReader := bufio.NewReader(slow)
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := slowReader.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	_, err = io.WriteString(slow, `{"session_id":`)
	require.NoError(t, err)

	signalled := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	silentAt := closedWithin(t, "silent connection", silent, 5*time.Second)
	idleAt := closedWithin(t, "idle keep-alive connection", idle, 5*time.Second)
	slowAt := closedWithin(t, "slow request", slow, 5*time.Second)

	assert.JSONEq(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"shutdown"}`, readWS(t, ws))
	assert.JSONEq(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"shutdown"}`, readWS(t, ws))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)

	select {
	case err := <-p.exited:
		require.NoError(t, err, "exit status 0; stderr:\n%s", p.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("the server did not exit; stderr:\n%s", p.stderr.String())
	}
	exit := time.Since(signalled)
	silentClosed, idleClosed, slowClosed := (<-silentAt).Sub(signalled), (<-idleAt).Sub(signalled), (<-slowAt).Sub(signalled)
	t.Logf("after SIGTERM: silent connection closed in %v, idle keep-alive in %v, slow request in %v, exit 0 in %v",
		silentClosed.Round(time.Millisecond), idleClosed.Round(time.Millisecond), slowClosed.Round(time.Millisecond), exit.Round(time.Millisecond))
	assert.Less(t, silentClosed, grace, "a silent connection is closed at once")
	assert.Less(t, idleClosed, grace, "an idle connection is closed at once")
	assert.GreaterOrEqual(t, slowClosed, grace*9/10, "a request in flight gets its grace")
	assert.Less(t, exit, grace+3*time.Second, "the exit waits for nothing but the grace")

	logged := p.stderr.String()
	assert.Regexp(t, `msg="session transition".*from=connected to=closing .*reason=shutdown`, logged)
	assert.Regexp(t, `msg="session transition".*from=closing to=closed`, logged)
	assert.Contains(t, logged, "requests cut at shutdown")
	assert.NotContains(t, logged, "deadline exceeded")
}

// TestShutdownWithSilentConnection is the reported case alone: a session
// and a TCP connection that sends nothing. The process closes the session
// and exits 0 without waiting for the connection (the request grace is
// long, so only an exit that does not wait for it passes).
func TestShutdownWithSilentConnection(t *testing.T) {
	p := startBinary(t, "-request-grace", "20s", "-drain-timeout", "30s")
	_, ws := p.connected(t)
	silent, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	require.NoError(t, err)
	defer silent.Close()

	signalled := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	silentAt := closedWithin(t, "silent connection", silent, 5*time.Second)
	assert.JSONEq(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"shutdown"}`, readWS(t, ws))
	assert.JSONEq(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"shutdown"}`, readWS(t, ws))
	_, _, err = ws.ReadMessage() // the close frame, which the client answers
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
	select {
	case err := <-p.exited:
		require.NoError(t, err, "exit status 0; stderr:\n%s", p.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("the server did not exit; stderr:\n%s", p.stderr.String())
	}
	exit := time.Since(signalled)
	t.Logf("after SIGTERM with a silent connection: connection closed in %v, exit 0 in %v",
		(<-silentAt).Sub(signalled).Round(time.Millisecond), exit.Round(time.Millisecond))
	assert.Less(t, exit, 2*time.Second)
	assert.Regexp(t, `from=connected to=closing .*reason=shutdown`, p.stderr.String())
}

// newSession calls streaming.new with body on base and returns its data.
func newSession(t *testing.T, base, body string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/streaming.new", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", "demo-pro-key")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var v struct {
		Code int            `json:"code"`
		Data map[string]any `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	require.Equal(t, 100, v.Code)
	return v.Data
}

// TestMediaFlags checks that the demo serves media (streaming.new answers
// an offer whose candidate is -media-udp's address, -media-public-ip's
// behind NAT) and that -media=false turns it off.
func TestMediaFlags(t *testing.T) {
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := udp.LocalAddr().(*net.UDPAddr).Port
	require.NoError(t, udp.Close())
	base, _, stop := startServer(t, "-media-udp", fmt.Sprintf("127.0.0.1:%d", port), "-media-public-ip", "192.0.2.9")
	data := newSession(t, base, `{}`)
	sdp, ok := data["sdp"].(map[string]any)
	require.True(t, ok, "the demo answers an offer: %v", data)
	assert.Equal(t, "offer", sdp["type"])
	assert.Contains(t, sdp["sdp"], fmt.Sprintf("192.0.2.9 %d typ host", port), "the candidate: -media-public-ip, -media-udp's port")
	assert.Equal(t, []any{}, data["ice_servers2"])
	assert.Equal(t, 0, stop())

	base, _, stop = startServer(t, "-media=false")
	data = newSession(t, base, `{}`)
	assert.NotContains(t, data, "sdp", "-media=false: no offer")
	assert.Equal(t, 0, stop())
}
