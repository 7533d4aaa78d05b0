package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

const (
	okBody          = `{"code":100,"message":"success","data":null}`
	unavailableBody = `{"code":400558,"message":"API connection error"}`
)

// probe calls h and returns the recorded answer.
func probe(h http.Handler, method, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestHealth(t *testing.T) {
	backendDown := errors.New("redis: connection refused")
	var readyErr error
	e := newEnv(t, func(c *Config) {
		c.Ready = func(context.Context) error { return readyErr }
	})
	h := e.srv.Health()
	tests := []struct {
		name         string
		method, path string
		readyErr     error
		status       int
		body         string
		retryAfter   string
	}{
		{"healthz", "GET", PathHealthz, nil, 200, okBody, ""},
		{"healthz while the backend is down", "GET", PathHealthz, backendDown, 200, okBody, ""},
		{"readyz", "GET", PathReadyz, nil, 200, okBody, ""},
		{"readyz HEAD", "HEAD", PathReadyz, nil, 200, okBody, ""},
		{"readyz while the backend is down", "GET", PathReadyz, backendDown, 503, unavailableBody, "1"},
		{"wrong method", "POST", PathReadyz, nil, 405, `{"code":40051,"message":"Resource is not found"}`, ""},
		{"other path", "GET", "/livez", nil, 404, `{"code":40051,"message":"Resource is not found"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readyErr = tt.readyErr
			w := probe(h, tt.method, tt.path)
			assert.Equal(t, tt.status, w.Code)
			assert.Equal(t, tt.body, strings.TrimSpace(w.Body.String()))
			assert.Equal(t, tt.retryAfter, w.Header().Get("Retry-After"))
			assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
			if tt.status == 405 {
				assert.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
			}
		})
	}
	readyErr = backendDown
	err := e.srv.Ready(context.Background())
	assert.ErrorIs(t, err, backendDown, "Ready wraps the backend's error")
	select {
	case r := <-e.refused:
		t.Fatalf("a probe was reported as a refusal: %+v", r)
	default:
	}
}

// TestReadyTimeout checks that a backend that does not answer makes /readyz
// answer 503 after ReadyTimeout, not after the probe's own deadline.
func TestReadyTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mgr, err := newManagerForTest()
		require.NoError(t, err)
		defer mgr.Close(context.Background())
		srv, err := New(Config{Manager: mgr, Accounts: testAccts, Avatars: testAvatars, ReadyTimeout: 300 * time.Millisecond,
			Ready: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }})
		require.NoError(t, err)
		defer srv.Close()
		start := time.Now()
		w := probe(srv.Health(), "GET", PathReadyz)
		assert.Equal(t, 503, w.Code)
		assert.Equal(t, unavailableBody, strings.TrimSpace(w.Body.String()))
		assert.Equal(t, 300*time.Millisecond, time.Since(start))
	})
}

func newManagerForTest() (*session.Manager, error) {
	return session.NewManager(session.Config{Limiter: newFakeLimiter(10), Avatars: testAvatars})
}

func TestReadyzAfterShutdown(t *testing.T) {
	e := newEnv(t, nil)
	require.NoError(t, e.srv.Shutdown(context.Background()))
	w := probe(e.srv.Health(), "GET", PathReadyz)
	assert.Equal(t, 503, w.Code)
	assert.Equal(t, unavailableBody, strings.TrimSpace(w.Body.String()))
	assert.Equal(t, 200, probe(e.srv.Health(), "GET", PathHealthz).Code)
}

// TestDrain checks the socket side of a drain: every socket gets 1012, the
// sessions do not change, a new socket is refused with 503/400558 and a
// Retry-After, the API goes on serving, and /readyz answers 503.
func TestDrain(t *testing.T) {
	e := newEnv(t, nil)
	c1, s1 := e.connect("key-acme")
	c2, s2 := e.connect("key-globex")
	var mu sync.Mutex
	var events []session.Event
	unsub := e.mgr.Subscribe(func(ev session.Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})

	drained := make(chan error, 1)
	go func() { drained <- e.srv.Drain(context.Background()) }()
	for _, s := range []*socket{s1, s2} {
		ce := s.closeError()
		require.NotNil(t, ce)
		assert.Equal(t, websocket.CloseServiceRestart, ce.Code)
		assert.Equal(t, realtime.ReasonServiceRestart, ce.Text)
	}
	require.NoError(t, <-drained)
	assert.True(t, e.srv.Draining())
	require.NoError(t, e.srv.Drain(context.Background()), "a second Drain waits the same way")

	for _, c := range []struct {
		key string
		c   created
	}{{"acme", c1}, {"globex", c2}} {
		info, err := e.mgr.Get(context.Background(), c.key, c.c.SessionID)
		require.NoError(t, err)
		assert.Equal(t, fsm.Connected, info.State, "the drain changes no session")
	}

	ws, resp, err := e.dial(c1.RealtimeEndpoint, nil)
	if ws != nil {
		ws.Close()
	}
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	var r Refusal
	select {
	case r = <-e.refused:
	case <-time.After(5 * time.Second):
		t.Fatal("the refused upgrade was not reported")
	}
	assert.Equal(t, PathRealtime, r.Endpoint)
	assert.EqualValues(t, 400558, r.Code)

	task := e.post("key-acme", PathTask, map[string]string{"session_id": c1.SessionID, "text": "still served"})
	assert.Equal(t, http.StatusOK, task.status, task.body)
	w := probe(e.srv.Health(), "GET", PathReadyz)
	assert.Equal(t, 503, w.Code)
	assert.Equal(t, unavailableBody, strings.TrimSpace(w.Body.String()))

	require.NoError(t, e.srv.Shutdown(context.Background()))
	unsub()
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, events, "no transition because of the drain")
}

// TestDrainRefusalCarriesCORS: the socket refused by a draining node is an
// answer like any other: an allowed origin gets its CORS headers (and may
// read the Retry-After).
func TestDrainRefusalCarriesCORS(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Origins = []string{"https://app.example.com"} })
	c := e.connecting("key-acme")
	require.NoError(t, e.srv.Drain(context.Background()))
	hdr := http.Header{"Origin": {"https://app.example.com"}}
	ws, resp, err := e.dial(c.RealtimeEndpoint, hdr)
	if ws != nil {
		ws.Close()
	}
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "https://app.example.com", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, CORSExposeHeaders, resp.Header.Get("Access-Control-Expose-Headers"))
	assert.Equal(t, "Origin", resp.Header.Get("Vary"))
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
}
