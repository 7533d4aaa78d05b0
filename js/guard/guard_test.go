package guard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/jsgen"
	"github.com/streamsession/streamsession/js/guard"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// TestIndexJSUpToDate fails when index.js is not what go generate makes of
// the command policy today.
func TestIndexJSUpToDate(t *testing.T) {
	want, err := jsgen.Render()
	require.NoError(t, err)
	onDisk, err := os.ReadFile("index.js")
	require.NoError(t, err)
	if !bytes.Equal(want, onDisk) || !bytes.Equal(want, guard.IndexJS) {
		t.Fatal("js/guard/index.js is stale: run go generate ./js/guard/ (or go generate ./...) and commit it")
	}
}

// refusal is one cell's answer: nil when the command is accepted.
type refusal struct {
	Status  int    `json:"status"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type cell struct {
	State   string   `json:"state"`
	Command string   `json:"command"`
	Want    *refusal `json:"want"`
}

// matrix is the table guard.test.js checks check() against.
type matrix struct {
	Source   string   `json:"source"`
	States   []string `json:"states"`
	Commands []string `json:"commands"`
	Cells    []cell   `json:"cells"`
}

// commandNames lists the guard's commands: the fsm.Commands by endpoint
// name, then the realtime socket.
func commandNames() []string {
	var names []string
	for _, c := range fsm.Commands() {
		names = append(names, "streaming."+c.String())
	}
	return append(names, "ws/streaming.chat")
}

// policyMatrix is the server's own decision for every cell, asked of fsm.Allow
// and, for the socket, of the rule server/socket.go applies (connecting or
// connected), independently of the generator.
func policyMatrix() matrix {
	m := matrix{Source: "the Go policy", Commands: commandNames()}
	for _, s := range fsm.States() {
		m.States = append(m.States, s.String())
		for _, name := range m.Commands {
			var err error
			if cmd, ok := fsm.ParseCommand(strings.TrimPrefix(name, "streaming.")); ok && name != "ws/streaming.chat" {
				err = fsm.Allow(s, cmd)
			} else if s != fsm.Connecting && s != fsm.Connected {
				err = fsm.StateError(s)
			}
			c := cell{State: s.String(), Command: name}
			if e, ok := sserrors.As(err); ok {
				c.Want = &refusal{Status: e.Status, Code: int(e.Code), Message: e.Message}
			}
			m.Cells = append(m.Cells, c)
		}
	}
	return m
}

// TestNodeMatrixFromPolicy runs guard.test.js under node with the Go
// policy's table: every state × command cell of check() must agree.
func TestNodeMatrixFromPolicy(t *testing.T) {
	node := findNode(t)
	runNodeMatrix(t, node, policyMatrix())
}

// TestLiveServerMatrix asks a real server every cell: a session is put in
// each state, each command is sent, and the answers must be the policy's
// and check()'s, cell by cell.
func TestLiveServerMatrix(t *testing.T) {
	live := liveMatrix(t)
	want := policyMatrix()
	require.Len(t, live.Cells, len(want.Cells))
	for i, c := range live.Cells {
		assert.Equal(t, want.Cells[i], c, "%s in %s: the server's answer", c.Command, c.State)
	}
	if t.Failed() {
		return
	}
	node := findNode(t)
	runNodeMatrix(t, node, live)
}

// findNode returns node's path, or skips without it (fails with CI set).
func findNode(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no node on PATH and CI is set: install Node.js 20 or later")
		}
		t.Skip("skipping: no node on PATH (with CI set this fails); install Node.js 20 or later")
	}
	return p
}

// runNodeMatrix writes m to a file and runs node --test with it.
func runNodeMatrix(t *testing.T, node string, m matrix) {
	t.Helper()
	data, err := json.Marshal(m)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "matrix.json")
	require.NoError(t, os.WriteFile(file, data, 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", filepath.Join("test", "guard.test.js"))
	cmd.Env = append(os.Environ(), "GUARD_MATRIX="+file)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test with the table of %s: %v\n%s", m.Source, err, out)
	}
	// The matrix test ran, and did not skip.
	if !bytes.Contains(out, []byte("ok 1 - every state × command cell answers as the table says\n")) {
		t.Fatalf("node --test did not run the matrix test:\n%s", out)
	}
}

// holdingLimiter is the in-memory limiter whose Release blocks for the
// sessions named in hold, so that a session stays closing while a test
// calls it.
type holdingLimiter struct {
	limits.Limiter
	mu   sync.Mutex
	hold map[string]chan struct{} // session id → closed to let Release go on
	held chan string              // receives a held session's id when its Release starts
}

func (l *holdingLimiter) Release(ctx context.Context, lease limits.Lease) error {
	l.mu.Lock()
	wait, ok := l.hold[lease.SessionID]
	l.mu.Unlock()
	if ok {
		l.held <- lease.SessionID
		<-wait
	}
	return l.Limiter.Release(ctx, lease)
}

const liveKey = "guard-key"

// liveServer is the API on loopback for one account.
type liveServer struct {
	t   *testing.T
	url string
	lim *holdingLimiter
}

func startLive(t *testing.T) *liveServer {
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	mem := limits.NewMemory(limits.MemoryConfig{})
	lim := &holdingLimiter{Limiter: mem, hold: make(map[string]chan struct{}), held: make(chan string, 1)}
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars})
	require.NoError(t, err)
	api, err := server.New(server.Config{
		Manager:      mgr,
		Accounts:     server.AccountsByKey{liveKey: {Name: "guard", Plan: limits.PaidPlan}},
		Avatars:      avatars,
		TaskDuration: func(string) time.Duration { return time.Millisecond },
	})
	require.NoError(t, err)
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, mgr.Close(ctx))
		assert.NoError(t, api.Shutdown(ctx))
		assert.NoError(t, mem.Close())
	})
	return &liveServer{t: t, url: srv.URL, lim: lim}
}

// call posts body to path and returns the refusal answered, nil on success.
func (s *liveServer) call(path string, body any) *refusal {
	s.t.Helper()
	data, err := json.Marshal(body)
	require.NoError(s.t, err)
	req, err := http.NewRequest(http.MethodPost, s.url+"/v1/"+path, bytes.NewReader(data))
	require.NoError(s.t, err)
	req.Header.Set("X-Api-Key", liveKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return answer(s.t, resp.StatusCode, raw)
}

func answer(t *testing.T, status int, raw []byte) *refusal {
	t.Helper()
	var env struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	require.NoError(t, json.Unmarshal(raw, &env), "%s", raw)
	if status == http.StatusOK && env.Code == 100 {
		return nil
	}
	return &refusal{Status: status, Code: env.Code, Message: env.Message}
}

type created struct {
	SessionID        string `json:"session_id"`
	RealtimeEndpoint string `json:"realtime_endpoint"`
}

func (s *liveServer) newSession() created {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+"/v1/streaming.new", strings.NewReader(`{"version":"v2"}`))
	require.NoError(s.t, err)
	req.Header.Set("X-Api-Key", liveKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var env struct {
		Data created `json:"data"`
	}
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&env))
	return env.Data
}

// dial opens the realtime socket and returns the refusal, nil when it opened
// (the socket is closed by the test's cleanup).
func (s *liveServer) dial(c created) *refusal {
	s.t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(c.RealtimeEndpoint, nil)
	if err == nil {
		s.t.Cleanup(func() { conn.Close() })
		// The server joins the session once the upgrade succeeded: the
		// socket's first event says it is connected.
		var ev struct{ Type, State string }
		require.NoError(s.t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
		require.NoError(s.t, conn.ReadJSON(&ev))
		require.Equal(s.t, "session.state_updated", ev.Type)
		require.Equal(s.t, "connected", ev.State)
		return nil
	}
	require.NotNil(s.t, resp, "dial: %v", err)
	defer resp.Body.Close()
	raw, rerr := io.ReadAll(resp.Body)
	require.NoError(s.t, rerr)
	return answer(s.t, resp.StatusCode, raw)
}

// inState returns a session in state, and a function to call once the cell's
// command is sent (it lets a closing session finish closing).
func (s *liveServer) inState(state fsm.State) (created, func()) {
	s.t.Helper()
	c := s.newSession()
	id := map[string]string{"session_id": c.SessionID}
	if state >= fsm.Connecting && state <= fsm.Connected {
		require.Nil(s.t, s.call("streaming.start", id))
	}
	if state == fsm.Connected {
		require.Nil(s.t, s.dial(c))
	}
	switch state {
	case fsm.Closing:
		release := make(chan struct{})
		s.lim.mu.Lock()
		s.lim.hold[c.SessionID] = release
		s.lim.mu.Unlock()
		stopped := make(chan *refusal, 1)
		go func() {
			// No require here: not the test's goroutine.
			req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/streaming.stop", strings.NewReader(`{"session_id":"`+c.SessionID+`"}`))
			req.Header.Set("X-Api-Key", liveKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				stopped <- &refusal{Message: err.Error()}
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				stopped <- &refusal{Status: resp.StatusCode}
				return
			}
			stopped <- nil
		}()
		require.Equal(s.t, c.SessionID, <-s.lim.held, "the held session's release")
		return c, func() {
			close(release)
			assert.Nil(s.t, <-stopped, "the held stop")
		}
	case fsm.Closed:
		require.Nil(s.t, s.call("streaming.stop", id))
	}
	return c, func() {}
}

// bodies are valid requests of each command, so that only the state decides.
func body(command, id string) any {
	switch command {
	case "streaming.task":
		return map[string]any{"session_id": id, "text": "hello"}
	case "streaming.ice":
		return map[string]any{"session_id": id, "candidate": map[string]any{
			"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0,
		}}
	}
	return map[string]any{"session_id": id}
}

// liveMatrix sends every command to a session in every state, a fresh
// session per cell.
func liveMatrix(t *testing.T) matrix {
	s := startLive(t)
	m := matrix{Source: "a live server", Commands: commandNames()}
	for _, st := range fsm.States() {
		m.States = append(m.States, st.String())
		for _, name := range m.Commands {
			c, done := s.inState(st)
			var got *refusal
			if name == "ws/streaming.chat" {
				got = s.dial(c)
			} else {
				got = s.call(name, body(name, c.SessionID))
			}
			done()
			m.Cells = append(m.Cells, cell{State: st.String(), Command: name, Want: got})
		}
	}
	return m
}
