package realtime

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/wstest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/sessiontest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newFakeClock() *sessiontest.Clock {
	return sessiontest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// upgrader upgrades the tests' sockets without the HTTP layer's checks.
var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// env is a Hub over a real Manager, with an httptest.Server that upgrades
// any request and serves it as the socket of ?account=…&session_id=…
// (package server authenticates; here nothing is checked).
type env struct {
	t      *testing.T
	mgr    *session.Manager
	hub    *Hub
	clock  *sessiontest.Clock
	http   *httptest.Server
	closed chan SocketInfo
}

// newEnv starts a Hub; tweak adjusts its Config before New.
func newEnv(t *testing.T, tweak func(*Config)) *env {
	t.Helper()
	lim := limits.NewMemory(limits.MemoryConfig{Capacity: 100})
	mgr, err := session.NewManager(session.Config{
		Limiter: lim,
		Avatars: session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
	})
	require.NoError(t, err)
	e := &env{t: t, mgr: mgr, clock: newFakeClock(), closed: make(chan SocketInfo, 100)}
	cfg := Config{
		Manager: mgr,
		Clock:   e.clock,
		Hooks:   Hooks{SocketClosed: func(s SocketInfo) { e.closed <- s }},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e.hub, err = New(cfg)
	require.NoError(t, err)
	e.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		q := r.URL.Query()
		e.hub.Serve(r.Context(), ws, paid(q.Get("account")), q.Get("session_id"))
	}))
	t.Cleanup(func() {
		e.http.Close()
		require.NoError(t, e.hub.Close())
		require.NoError(t, mgr.Close(context.Background()))
		require.NoError(t, lim.Close())
	})
	return e
}

// paid returns the account named name, on the paid plan.
func paid(name string) session.Account {
	return session.Account{Name: name, Plan: limits.PaidPlan}
}

// create creates a session of account, in new.
func (e *env) create(account string) string {
	e.t.Helper()
	info, err := e.mgr.Create(context.Background(), paid(account), session.CreateOptions{})
	require.NoError(e.t, err)
	return info.ID
}

// connect creates, starts and joins a session, opens its socket and reads
// the first state_updated (connected).
func (e *env) connect(account string) (string, *socket) {
	e.t.Helper()
	ctx := context.Background()
	id := e.create(account)
	_, err := e.mgr.Start(ctx, account, id)
	require.NoError(e.t, err)
	_, err = e.mgr.Join(ctx, account, id)
	require.NoError(e.t, err)
	s := e.open(account, id)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	return id, s
}

// open dials the session's socket.
func (e *env) open(account, id string) *socket {
	e.t.Helper()
	u := "ws" + strings.TrimPrefix(e.http.URL, "http") + "/?account=" + url.QueryEscape(account) + "&session_id=" + url.QueryEscape(id)
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { ws.Close() })
	return &socket{t: e.t, ws: ws}
}

// rawClient upgrades a socket and runs a client for sessionID on it,
// unregistered.
func (e *env) rawClient(account, sessionID string) (*client, *socket) {
	e.t.Helper()
	serverSide := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err == nil {
			serverSide <- ws
		}
	}))
	e.t.Cleanup(hs.Close)
	peer, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { peer.Close() })
	cl := e.hub.newClient(<-serverSide, paid(account), sessionID)
	e.hub.wg.Add(2)
	cl.conn.Start(&e.hub.wg)
	return cl, &socket{t: e.t, ws: peer}
}

// rawClientStopped is rawClient with the client's goroutines not started
// (the caller starts them after e.hub.wg.Add(2)), its first state queued.
func (e *env) rawClientStopped(account, sessionID string) (*client, *socket) {
	e.t.Helper()
	serverSide := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err == nil {
			serverSide <- ws
		}
	}))
	e.t.Cleanup(hs.Close)
	peer, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { peer.Close() })
	cl := e.hub.newClient(<-serverSide, paid(account), sessionID)
	cl.applyState(fsm.Connected, 1, session.ReasonNone)
	cl.markReady()
	return cl, &socket{t: e.t, ws: peer}
}

// nopRelay is a Relay that delivers nothing: it gives a Hub the multi-node
// paths, for tests that feed onRelay by hand.
type nopRelay struct{}

func (nopRelay) Publish(context.Context, string, RelayMessage) error { return nil }

func (nopRelay) Subscribe(func(string, RelayMessage)) (func(), error) { return func() {}, nil }

// socket is a test client's realtime socket.
type socket struct {
	t  *testing.T
	ws *websocket.Conn
}

// The socket's reads, writes and close are package wstest's.

func (s *socket) read() string       { s.t.Helper(); return wstest.Read(s.t, s.ws) }
func (s *socket) expect(want string) { s.t.Helper(); wstest.Expect(s.t, s.ws, want) }
func (s *socket) send(msg string)    { s.t.Helper(); wstest.Send(s.t, s.ws, msg) }
func (s *socket) closeError() *websocket.CloseError {
	s.t.Helper()
	return wstest.CloseError(s.t, s.ws)
}

// settle makes sure the hub served everything sent before: an invalid
// message is answered in order.
func (s *socket) settle() {
	s.t.Helper()
	s.send(`{"type":"nothing"}`)
	s.expect(`{"type":"error","event_type":"error","code":400175,"message":"Invalid parameter"}`)
}
