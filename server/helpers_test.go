package server

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/streamsession/streamsession/internal/wstest"
	"github.com/streamsession/streamsession/sessiontest"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"

	"github.com/streamsession/streamsession/server/realtime"
)

// Test accounts: API key → account.
var (
	proPlan   = limits.Plan{Name: "pro", MaxConcurrent: 100}
	trialPlan = limits.Plan{Name: "trial", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 300, SessionDurationLimit: 600 * time.Second}
	testAccts = AccountsByKey{
		"key-acme":    {Name: "acme", Plan: proPlan},
		"key-globex":  {Name: "globex", Plan: proPlan},
		"key-trial":   {Name: "trial-co", Plan: trialPlan},
		"key-limited": {Name: "limited", Plan: limits.Plan{Name: "one", MaxConcurrent: 1}},
		"key-noquota": {Name: "noquota", Plan: limits.Plan{Name: "spent", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 0}},
	}
	testAvatars = session.Avatars{
		{ID: "Wayne_20240711", Public: true, Active: true, Default: true},
		{ID: "acme_private", Owner: "acme", Active: true, DefaultVoice: "voice-1"},
		{ID: "retired", Public: true, Active: false},
	}
	testSecret = []byte("0123456789abcdef0123456789abcdef")
)

// fakeLimiter is an exact in-process limiter: the trial quota is refused
// when MonthlyMinutes is 0, per-account concurrency and a global capacity
// are counted, and err (when set) is returned as a backend failure.
type fakeLimiter struct {
	mu       sync.Mutex
	capacity int
	held     map[string]string // session id → account
	err      error
}

func newFakeLimiter(capacity int) *fakeLimiter {
	return &fakeLimiter{capacity: capacity, held: make(map[string]string)}
}

func (l *fakeLimiter) setErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
}

func (l *fakeLimiter) Acquire(ctx context.Context, r limits.Request) (limits.Decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return limits.Decision{}, l.err
	}
	lease := limits.Lease{Account: r.Account, SessionID: r.SessionID}
	if _, ok := l.held[r.SessionID]; ok {
		return limits.Decision{Lease: lease}, nil
	}
	if r.Plan.Trial && r.Plan.MonthlyMinutes == 0 {
		return limits.Decision{Refused: limits.TrialQuota}, nil
	}
	n := 0
	for _, a := range l.held {
		if a == r.Account {
			n++
		}
	}
	if n >= r.Plan.MaxConcurrent {
		return limits.Decision{Refused: limits.Concurrency}, nil
	}
	if len(l.held) >= l.capacity {
		return limits.Decision{Refused: limits.SessionFull}, nil
	}
	l.held[r.SessionID] = r.Account
	return limits.Decision{Lease: lease}, nil
}

func (l *fakeLimiter) Started(context.Context, limits.Lease) error { return nil }

func (l *fakeLimiter) Renew(_ context.Context, lease limits.Lease) (limits.Lease, error) {
	return lease, nil
}

func (l *fakeLimiter) Keep(_ context.Context, lease limits.Lease) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.held[lease.SessionID]; !ok {
		return limits.ErrLeaseExpired
	}
	return nil
}

func (l *fakeLimiter) Release(_ context.Context, lease limits.Lease) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, lease.SessionID)
	return nil
}

func (l *fakeLimiter) Close() error { return nil }

func (l *fakeLimiter) heldCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

// fakeClock is the tests' Clock: it moves only when Advance is called.
type fakeClock = sessiontest.Clock

func newFakeClock() *fakeClock {
	return sessiontest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// env is a Server over a real Manager, served by an httptest.Server.
type env struct {
	t       *testing.T
	srv     *Server
	mgr     *session.Manager
	lim     *fakeLimiter
	clock   *fakeClock
	http    *httptest.Server
	opened  chan realtime.SocketInfo
	closed  chan realtime.SocketInfo
	refused chan Refusal
	// unannounced receives the sockets whose relay announcement failed
	// (newNodes only).
	unannounced chan realtime.AnnounceFailure
}

// newEnv starts a server; tweak adjusts its Config before New.
func newEnv(t *testing.T, tweak func(*Config)) *env {
	t.Helper()
	lim := newFakeLimiter(1000)
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: testAvatars})
	require.NoError(t, err)
	e := &env{
		t: t, mgr: mgr, lim: lim, clock: newFakeClock(),
		opened: make(chan realtime.SocketInfo, 100), closed: make(chan realtime.SocketInfo, 100), refused: make(chan Refusal, 1000),
	}
	cfg := Config{
		Manager:  mgr,
		Accounts: testAccts,
		Avatars:  testAvatars,
		Secret:   testSecret,
		Clock:    e.clock,
		Hooks: Hooks{
			SocketOpened: func(s realtime.SocketInfo) { e.opened <- s },
			SocketClosed: func(s realtime.SocketInfo) { e.closed <- s },
			Refused: func(r Refusal) {
				select {
				case e.refused <- r:
				default:
				}
			},
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e.srv, err = New(cfg)
	require.NoError(t, err)
	e.http = httptest.NewServer(e.srv)
	t.Cleanup(func() {
		e.http.Close()
		require.NoError(t, e.srv.Close())
		require.NoError(t, mgr.Close(context.Background()))
	})
	return e
}

// response is an HTTP answer with its body read.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request; body is sent as is when it is a string, else as JSON.
func (e *env) do(method, path string, hdr map[string]string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	require.NoError(e.t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

func key(k string) map[string]string    { return map[string]string{"X-Api-Key": k} }
func bearer(t string) map[string]string { return map[string]string{"Authorization": "Bearer " + t} }

// post calls a session endpoint with an API key.
func (e *env) post(apiKey, path string, body any) response {
	e.t.Helper()
	return e.do(http.MethodPost, path, key(apiKey), body)
}

// data decodes a success envelope's data into v.
func (e *env) data(r response, v any) {
	e.t.Helper()
	require.Equal(e.t, http.StatusOK, r.status, r.body)
	var env struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	require.NoError(e.t, json.Unmarshal([]byte(r.body), &env))
	require.Equal(e.t, 100, env.Code)
	require.NoError(e.t, json.Unmarshal(env.Data, v))
}

type created struct {
	SessionID            string `json:"session_id"`
	AccessToken          string `json:"access_token"`
	RealtimeEndpoint     string `json:"realtime_endpoint"`
	URL                  string `json:"url"`
	IsPaid               bool   `json:"is_paid"`
	SessionDurationLimit int64  `json:"session_duration_limit"`
}

// newSession creates a session with an API key.
func (e *env) newSession(apiKey string) created {
	e.t.Helper()
	var c created
	e.data(e.post(apiKey, PathNew, map[string]any{}), &c)
	return c
}

// connecting creates and starts a session.
func (e *env) connecting(apiKey string) created {
	e.t.Helper()
	c := e.newSession(apiKey)
	r := e.post(apiKey, PathStart, map[string]string{"session_id": c.SessionID})
	require.Equal(e.t, http.StatusOK, r.status, r.body)
	return c
}

// dial opens the realtime socket at url.
func (e *env) dial(url string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	return wstest.DialRaw(url, hdr)
}

// socket is a test client's realtime socket.
type socket struct {
	t  *testing.T
	ws *websocket.Conn
}

// connect creates, starts and connects a session, and reads the first
// state_updated (connected).
func (e *env) connect(apiKey string) (created, *socket) {
	e.t.Helper()
	c := e.connecting(apiKey)
	s := e.open(c.RealtimeEndpoint)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	return c, s
}

// open dials url and fails the test on error.
func (e *env) open(url string) *socket {
	e.t.Helper()
	ws, resp, err := e.dial(url, nil)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusSwitchingProtocols, resp.StatusCode)
	s := &socket{t: e.t, ws: ws}
	e.t.Cleanup(func() { ws.Close() })
	return s
}

// The socket's reads, writes and close are package wstest's.

func (s *socket) read() string       { s.t.Helper(); return wstest.Read(s.t, s.ws) }
func (s *socket) expect(want string) { s.t.Helper(); wstest.Expect(s.t, s.ws, want) }
func (s *socket) send(msg string)    { s.t.Helper(); wstest.Send(s.t, s.ws, msg) }
func (s *socket) closeError() *websocket.CloseError {
	s.t.Helper()
	return wstest.CloseError(s.t, s.ws)
}

// message reads the next message as a realtime.ServerMessage.
func (s *socket) message() realtime.ServerMessage {
	s.t.Helper()
	var m realtime.ServerMessage
	require.NoError(s.t, json.Unmarshal([]byte(s.read()), &m))
	return m
}
