package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/client"
	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/server"
)

func TestWholeSession(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	c, _ := newClient(t, b, "key-acme")

	avatars, err := c.Avatars(ctx)
	require.NoError(t, err)
	assert.Equal(t, []client.Avatar{{ID: "Wayne_20240711", Public: true, Active: true}}, avatars)

	s, err := c.NewSession(ctx, client.NewSessionRequest{
		Quality: "low", Voice: &client.Voice{Rate: 1.2, Emotion: "friendly"},
		ActivityIdleTimeout: time.Minute, Version: "v2", VideoEncoding: "VP8",
	})
	require.NoError(t, err)
	assert.Equal(t, fsm.New, s.State())
	assert.NotEmpty(t, s.ID())
	assert.True(t, s.IsPaid())

	require.NoError(t, s.Start(ctx))
	assert.Equal(t, fsm.Connecting, s.State())
	events, err := s.Connect(ctx)
	require.NoError(t, err)
	assert.Equal(t, client.StateEvent{State: fsm.Connected}, next(t, events), "the current state first")
	assert.Equal(t, fsm.Connected, s.State())

	listed, err := c.List(ctx)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.Equal(t, s.ID(), listed[0].ID)
	assert.Equal(t, fsm.Connected, listed[0].State)

	res, err := s.Task(ctx, "Hello there")
	require.NoError(t, err)
	assert.NotEmpty(t, res.TaskID)
	assert.Positive(t, res.Duration)
	assert.Equal(t, client.StartTalkingEvent{TaskID: res.TaskID, Duration: res.Duration}, next(t, events))
	require.NoError(t, s.Interrupt(ctx))
	stopped, ok := next(t, events).(client.StopTalkingEvent)
	require.True(t, ok)
	assert.Equal(t, res.TaskID, stopped.TaskID)
	assert.True(t, stopped.Interrupted)

	require.NoError(t, s.KeepAlive(ctx))
	require.NoError(t, s.StartListening(ctx))
	require.NoError(t, s.StopListening(ctx))

	require.NoError(t, s.Stop(ctx))
	assert.Equal(t, fsm.Closed, s.State())
	var states []fsm.State
	for _, ev := range drain(t, events) {
		switch ev := ev.(type) {
		case client.StateEvent:
			states = append(states, ev.State)
		case client.DisconnectedEvent:
			assert.False(t, ev.Reconnecting, "a closed session is not reconnected")
		}
	}
	assert.Equal(t, []fsm.State{fsm.Closing, fsm.Closed}, states)
	listed, err = c.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, listed, "no open session left")
	assert.Zero(t, b.lim.InUse(), "the slot is free")
}

func TestWholeSessionWithABearerToken(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	keyed, _ := newClient(t, b, "key-acme")
	token, err := keyed.CreateToken(ctx)
	require.NoError(t, err)
	c, err := client.New(b.http.URL+"/", client.WithToken(token))
	require.NoError(t, err)
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	events, err := s.Connect(ctx)
	require.NoError(t, err)
	assert.Equal(t, client.StateEvent{State: fsm.Connected}, next(t, events))
	require.NoError(t, s.Stop(ctx))
	drain(t, events)

	_, err = c.NewSession(ctx, client.NewSessionRequest{})
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "a token creates one session")
	_, err = c.CreateToken(ctx)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "a token mints no token")
}

func TestGuardRefusesWithoutARequest(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	c, cnt := newClient(t, b, "key-acme")
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	before := cnt.total()

	// What the server answers, through a client without the guard.
	raw, _ := newClient(t, b, "key-acme", client.WithoutGuard())
	rs, err := raw.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	_, serverErr := rs.Task(ctx, "hi")
	require.Error(t, serverErr)

	tests := []struct {
		name string
		call func() error
	}{
		{"task", func() error { _, err := s.Task(ctx, "hi"); return err }},
		{"interrupt", func() error { return s.Interrupt(ctx) }},
		{"keep_alive", func() error { return s.KeepAlive(ctx) }},
		{"start_listening", func() error { return s.StartListening(ctx) }},
		{"stop_listening", func() error { return s.StopListening(ctx) }},
		{"connect", func() error { _, err := s.Connect(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Error(t, err)
			got, ok := sserrors.As(err)
			require.True(t, ok)
			want, _ := sserrors.As(serverErr)
			assert.Equal(t, want.Code, got.Code)
			assert.Equal(t, want.Status, got.Status)
			assert.Equal(t, want.Message, got.Message, "the server's bytes")
			assert.Same(t, fsm.StateError(fsm.New), got)
		})
	}
	assert.Equal(t, before, cnt.total(), "no request sent")

	require.NoError(t, s.Stop(ctx))
	n := cnt.total()
	err = s.Stop(ctx)
	assert.ErrorIs(t, err, sserrors.SessionState("closed"))
	err = s.Start(ctx)
	assert.ErrorIs(t, err, sserrors.SessionState("closed"))
	assert.Equal(t, n, cnt.total(), "refused without a request")
}

func TestGuardLearnsFromRefusals(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	c, _ := newClient(t, b, "key-acme")
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	other, _ := newClient(t, b, "key-acme")
	// Stop it behind this Session's back: the Session still believes new.
	require.NoError(t, stopByID(ctx, other, b, s.ID()))
	assert.Equal(t, fsm.New, s.State())
	err = s.Start(ctx)
	assert.ErrorIs(t, err, sserrors.SessionState("closed"), "the server's answer")
	assert.Equal(t, fsm.Closed, s.State(), "learned from the refusal")
}

// stopByID stops a session through the manager (another client's act).
func stopByID(ctx context.Context, _ *client.Client, b *backend, id string) error {
	_, err := b.mgr.Stop(ctx, "acme", id)
	return err
}

func TestWithoutGuardSendsEverything(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	c, cnt := newClient(t, b, "key-acme", client.WithoutGuard())
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	_, err = s.Task(ctx, "hi")
	assert.ErrorIs(t, err, sserrors.SessionState("new"))
	assert.Equal(t, 1, cnt.count("/v1/streaming.task"), "sent, and refused by the server")
}

func TestRetryAfterThenSuccess(t *testing.T) {
	b := newBackend(t)
	b.down.Store(1) // the server answers 503/400558 with Retry-After: 1 once
	c, cnt := newClient(t, b, "key-acme")
	start := time.Now()
	s, err := c.NewSession(t.Context(), client.NewSessionRequest{})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After honoured")
	assert.Equal(t, 2, cnt.count(server.PathNew), "one retry")
	assert.Equal(t, fsm.New, s.State())
	assert.Equal(t, 1, b.lim.InUse())
}

func TestNeverRetried(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	c, cnt := newClient(t, b, "key-acme")
	_, err := c.NewSession(ctx, client.NewSessionRequest{Quality: "ultra"})
	assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
	assert.Equal(t, 1, cnt.count(server.PathNew), "a 400 is never retried")

	lc, lcnt := newClient(t, b, "key-limited")
	_, err = lc.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	_, err = lc.NewSession(ctx, client.NewSessionRequest{})
	assert.ErrorIs(t, err, sserrors.ErrConcurrentLimitReached)
	assert.Equal(t, 2, lcnt.count(server.PathNew), "10007 is never retried")
}

func TestLostReplyOfNewIsRetriedIntoTheSameSession(t *testing.T) {
	b := newBackend(t)
	drop := &dropFirst{next: http.DefaultTransport, path: server.PathNew}
	hc := &http.Client{Transport: drop}
	t.Cleanup(hc.CloseIdleConnections)
	c, err := client.New(b.http.URL, client.WithAPIKey("key-acme"), client.WithHTTPClient(hc), client.WithBackoff(time.Millisecond, 10*time.Millisecond))
	require.NoError(t, err)
	s, err := c.NewSession(t.Context(), client.NewSessionRequest{})
	require.NoError(t, err)
	require.True(t, drop.dropped.Load(), "the first answer was lost")
	infos := b.sessions(t, "acme")
	require.Len(t, infos, 1, "one session")
	assert.Equal(t, infos[0].ID, s.ID(), "the retry returned the session the lost answer named")
	assert.Equal(t, 1, b.lim.InUse(), "one slot")
}

func TestTransportErrors(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	c, _ := newClient(t, b, "key-acme", client.WithBackoff(time.Millisecond, 5*time.Millisecond))
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	b.http.Close()

	_, err = c.List(ctx)
	var te *client.TransportError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "GET /v1/streaming.list", te.Op)
	_, isAPI := sserrors.As(err)
	assert.False(t, isAPI, "distinguishable from an answer")

	_, err = s.Connect(ctx)
	require.ErrorAs(t, err, &te)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.List(cctx)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestEveryErrorIsTyped(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	raw, _ := newClient(t, b, "key-acme", client.WithoutGuard())
	s, err := raw.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	limited, _ := newClient(t, b, "key-limited")
	_, err = limited.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	bad, _ := newClient(t, b, "key-nope")

	tests := []struct {
		name   string
		call   func() error
		want   *sserrors.Error
		status int
	}{
		{"unauthorized", func() error { _, err := bad.List(ctx); return err }, sserrors.ErrUnauthorized, 401},
		{"invalid parameter", func() error {
			_, err := raw.NewSession(ctx, client.NewSessionRequest{VideoEncoding: "AV1"})
			return err
		}, sserrors.ErrInvalidParameter, 400},
		{"missing text", func() error { _, err := s.Task(ctx, " "); return err }, sserrors.ErrMissingParams, 400},
		{"state", func() error { _, err := s.Task(ctx, "hi"); return err }, sserrors.SessionState("new"), 400},
		{"concurrency", func() error { _, err := limited.NewSession(ctx, client.NewSessionRequest{}); return err }, sserrors.ErrConcurrentLimitReached, 429},
		{"avatar", func() error {
			_, err := raw.NewSession(ctx, client.NewSessionRequest{AvatarID: "nobody"})
			return err
		}, sserrors.ErrStreamingAvatarNotFound, 404},
		{"local validation", func() error {
			_, err := raw.NewSession(ctx, client.NewSessionRequest{ActivityIdleTimeout: 1500 * time.Millisecond})
			return err
		}, sserrors.ErrInvalidParameter, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var e *sserrors.Error
			require.ErrorAs(t, err, &e)
			assert.ErrorIs(t, err, tt.want)
			assert.Equal(t, tt.status, e.Status)
		})
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		url  string
		opts []client.Option
	}{
		{"no credentials", "http://127.0.0.1:1", nil},
		{"both credentials", "http://127.0.0.1:1", []client.Option{client.WithAPIKey("k"), client.WithToken("t")}},
		{"relative URL", "/v1", []client.Option{client.WithAPIKey("k")}},
		{"ws URL", "ws://127.0.0.1:1", []client.Option{client.WithAPIKey("k")}},
		{"negative retries", "http://127.0.0.1:1", []client.Option{client.WithAPIKey("k"), client.WithMaxRetries(-1)}},
		{"bad backoff", "http://127.0.0.1:1", []client.Option{client.WithAPIKey("k"), client.WithBackoff(time.Second, time.Millisecond)}},
		{"bad reconnect", "http://127.0.0.1:1", []client.Option{client.WithAPIKey("k"), client.WithReconnectBackoff(0, time.Second)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.New(tt.url, tt.opts...)
			assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
		})
	}
}

// TestReconnectAfterTheServerGoesAway: two Servers on one Manager behind
// one address; the first shuts down (1001), and the client reopens the
// socket through the same endpoint on the second, which sends the current
// state first.
func TestReconnectAfterTheServerGoesAway(t *testing.T) {
	for _, tc := range []struct {
		name string
		// leave makes the first server close the socket with code.
		leave func(srv *server.Server, ctx context.Context) error
		code  int
	}{
		{"shutdown closes with 1001", (*server.Server).Shutdown, websocket.CloseGoingAway},
		{"drain closes with 1012", (*server.Server).Drain, websocket.CloseServiceRestart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			ctx := t.Context()
			second, err := server.New(server.Config{Manager: b.mgr, Accounts: testAccounts, Avatars: testAvatars, Secret: testSecret})
			require.NoError(t, err)
			t.Cleanup(func() { _ = second.Close() })
			var live atomic.Pointer[server.Server]
			live.Store(b.srv)
			b.intercept(func(w http.ResponseWriter, r *http.Request) bool {
				if l := live.Load(); l != b.srv {
					l.ServeHTTP(w, r)
					return true
				}
				return false
			})

			s, events := connectedSession(t, b, client.WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))

			live.Store(second)
			require.NoError(t, tc.leave(b.srv, ctx))
			dis, ok := next(t, events).(client.DisconnectedEvent)
			require.True(t, ok)
			assert.True(t, dis.Reconnecting)
			var ce *websocket.CloseError
			require.ErrorAs(t, dis.Err, &ce)
			assert.Equal(t, tc.code, ce.Code)
			assert.Equal(t, client.StateEvent{State: fsm.Connected}, next(t, events), "the current state first, from the second server")

			res, err := s.Task(ctx, "still here")
			require.NoError(t, err)
			assert.Equal(t, client.StartTalkingEvent{TaskID: res.TaskID, Duration: res.Duration}, next(t, events))
			require.NoError(t, s.Close())
			drain(t, events)
			assert.Equal(t, fsm.Connected, s.State(), "Close leaves the session running")
			require.NoError(t, s.Stop(ctx))
		})
	}
}

// TestReconnectAfterADrop: the socket drops without a close frame.
func TestReconnectAfterADrop(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	var h hijacked
	b.intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != server.PathRealtime {
			return false
		}
		b.srv.ServeHTTP(hijackWriter{w, &h}, r)
		return true
	})
	s, events := connectedSession(t, b, client.WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
	h.cut()
	dis, ok := next(t, events).(client.DisconnectedEvent)
	require.True(t, ok)
	assert.True(t, dis.Reconnecting)
	assert.Equal(t, client.StateEvent{State: fsm.Connected}, next(t, events))
	require.NoError(t, s.Stop(ctx))
	drain(t, events)
}

func TestSocketErrorEvent(t *testing.T) {
	// A fake socket server: the current state, then an error message and
	// a state with a reason, then a normal close.
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == server.PathNew {
			sserrors.WriteData(w, map[string]any{"session_id": "s1", "realtime_endpoint": "ws://" + r.Host + server.PathRealtime})
			return
		}
		if r.URL.Path == server.PathStart {
			sserrors.WriteData(w, nil)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for _, m := range []string{
			`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`,
			`{"type":"error","code":400175,"message":"Invalid parameter"}`,
			`{"type":"some_future_event"}`,
			`{"event_type":"session.state_updated","state":"closing","reason":"idle"}`,
			`{"type":"session.state_updated","state":"closed","reason":"idle"}`,
		} {
			_ = ws.WriteMessage(websocket.TextMessage, []byte(m))
		}
		_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "closed"))
		_, _, _ = ws.ReadMessage()
	}))
	defer hs.Close()
	c, err := client.New(hs.URL, client.WithAPIKey("k"))
	require.NoError(t, err)
	ctx := t.Context()
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	events, err := s.Connect(ctx)
	require.NoError(t, err)
	got := drain(t, events)
	require.Len(t, got, 5)
	assert.Equal(t, client.StateEvent{State: fsm.Connected}, got[0])
	ee, ok := got[1].(client.ErrorEvent)
	require.True(t, ok)
	assert.ErrorIs(t, ee.Err, sserrors.ErrInvalidParameter)
	assert.Equal(t, 400, ee.Err.Status)
	assert.Equal(t, client.StateEvent{State: fsm.Closing, Reason: "idle"}, got[2])
	assert.Equal(t, client.StateEvent{State: fsm.Closed, Reason: "idle"}, got[3])
	dis, ok := got[4].(client.DisconnectedEvent)
	require.True(t, ok)
	assert.False(t, dis.Reconnecting)
	assert.Equal(t, fsm.Closed, s.State())
	_, err = s.Task(ctx, "x")
	assert.ErrorIs(t, err, sserrors.SessionState("closed"))
}

func TestConcurrentUse(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	c, _ := newClient(t, b, "key-acme")
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	events, err := s.Connect(ctx)
	require.NoError(t, err)
	require.Equal(t, client.StateEvent{State: fsm.Connected}, next(t, events))
	go func() {
		for range events {
		}
	}()
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			switch i % 4 {
			case 0:
				_, err := s.Task(ctx, strings.Repeat("a", i+1))
				errs <- err
			case 1:
				errs <- s.KeepAlive(ctx)
			case 2:
				_, err := c.List(ctx)
				errs <- err
			default:
				errs <- s.Interrupt(ctx)
			}
		}()
	}
	for range 40 {
		require.NoError(t, <-errs)
	}
	require.NoError(t, s.Stop(ctx))
}

// fakeSockets serves streaming.new and start, and runs script[i] on the
// i-th realtime socket (a socket past the script is refused with 10005).
func fakeSockets(t *testing.T, script ...func(ws *websocket.Conn)) *httptest.Server {
	t.Helper()
	up := websocket.Upgrader{}
	var n atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case server.PathNew:
			sserrors.WriteData(w, map[string]any{"session_id": "s1", "realtime_endpoint": "ws://" + r.Host + server.PathRealtime})
			return
		case server.PathStart:
			sserrors.WriteData(w, nil)
			return
		}
		i := int(n.Add(1)) - 1
		if i >= len(script) {
			sserrors.Write(w, sserrors.SessionState("closed"))
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		script[i](ws)
	}))
	t.Cleanup(hs.Close)
	return hs
}

func send(ws *websocket.Conn, msgs ...string) {
	for _, m := range msgs {
		_ = ws.WriteMessage(websocket.TextMessage, []byte(m))
	}
}

func closeWith(ws *websocket.Conn, code int, text string) {
	_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, text))
	_, _, _ = ws.ReadMessage() // the client's close frame
}

const connectedMsg = `{"type":"session.state_updated","state":"connected"}`

// connectFake creates, starts and connects a session of hs.
func connectFake(t *testing.T, hs *httptest.Server) (*client.Session, <-chan client.Event) {
	t.Helper()
	c, err := client.New(hs.URL, client.WithAPIKey("k"), client.WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond))
	require.NoError(t, err)
	s, err := c.NewSession(t.Context(), client.NewSessionRequest{})
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	events, err := s.Connect(t.Context())
	require.NoError(t, err)
	return s, events
}

// TestReconnectAfterServiceRestart: a close with 1012 (a node draining)
// is reconnected, and the new socket's current state comes first.
func TestReconnectAfterServiceRestart(t *testing.T) {
	hs := fakeSockets(t,
		func(ws *websocket.Conn) {
			send(ws, connectedMsg)
			closeWith(ws, websocket.CloseServiceRestart, "service restart")
		},
		func(ws *websocket.Conn) {
			send(ws, connectedMsg, `{"type":"session.state_updated","state":"closing","reason":"stop"}`,
				`{"type":"session.state_updated","state":"closed","reason":"stop"}`)
			closeWith(ws, websocket.CloseNormalClosure, "session closed")
		})
	s, events := connectFake(t, hs)
	got := drain(t, events)
	require.Len(t, got, 6, "%v", got)
	assert.Equal(t, client.StateEvent{State: fsm.Connected}, got[0])
	dis := got[1].(client.DisconnectedEvent)
	assert.True(t, dis.Reconnecting)
	var ce *websocket.CloseError
	require.ErrorAs(t, dis.Err, &ce)
	assert.Equal(t, websocket.CloseServiceRestart, ce.Code)
	assert.Equal(t, client.StateEvent{State: fsm.Connected}, got[2], "the current state first")
	assert.Equal(t, client.StateEvent{State: fsm.Closing, Reason: "stop"}, got[3])
	assert.Equal(t, client.StateEvent{State: fsm.Closed, Reason: "stop"}, got[4])
	assert.False(t, got[5].(client.DisconnectedEvent).Reconnecting)
	assert.Equal(t, fsm.Closed, s.State())
}

// TestNoReconnect: a policy close (1008) ends the stream; so does a
// reconnection refused with a 4xx, whose state the guard learns.
func TestNoReconnect(t *testing.T) {
	t.Run("1008", func(t *testing.T) {
		hs := fakeSockets(t, func(ws *websocket.Conn) {
			send(ws, connectedMsg)
			closeWith(ws, websocket.ClosePolicyViolation, "too many messages")
		})
		_, events := connectFake(t, hs)
		got := drain(t, events)
		require.Len(t, got, 2)
		dis := got[1].(client.DisconnectedEvent)
		assert.False(t, dis.Reconnecting)
	})
	t.Run("refused", func(t *testing.T) {
		hs := fakeSockets(t, func(ws *websocket.Conn) {
			send(ws, connectedMsg)
			closeWith(ws, websocket.CloseGoingAway, "server shutting down")
		})
		s, events := connectFake(t, hs)
		got := drain(t, events)
		require.Len(t, got, 3, "%v", got)
		assert.True(t, got[1].(client.DisconnectedEvent).Reconnecting)
		last := got[2].(client.DisconnectedEvent)
		assert.False(t, last.Reconnecting)
		assert.ErrorIs(t, last.Err, sserrors.SessionState("closed"))
		assert.Equal(t, fsm.Closed, s.State(), "learned from the refusal")
	})
}
