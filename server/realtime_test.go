package server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

func wsURL(e *env, id, token string) string {
	return "ws" + strings.TrimPrefix(e.http.URL, "http") + PathRealtime + "?session_id=" + url.QueryEscape(id) + "&session_token=" + url.QueryEscape(token)
}

// TestHandshakeRefusals: every refusal is the JSON error with its status,
// never a 101, and changes nothing.
func TestHandshakeRefusals(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Origins = []string{"https://app.example.com"} })
	conn := e.connecting("key-acme")
	fresh := e.newSession("key-acme")
	closed := e.newSession("key-acme")
	require.Equal(t, 200, e.post("key-acme", PathStop, `{"session_id":"`+closed.SessionID+`"}`).status)
	access := mustAccess(t, testSecret)
	unknown := "0123456789abcdef0123456789abcdef"

	tests := []struct {
		name   string
		url    string
		header http.Header
		status int
		want   string
	}{
		{"no token", wsURL(e, conn.SessionID, ""), nil, 401, bodyUnauthorized},
		{"no session id", wsURL(e, "", conn.AccessToken), nil, 401, bodyUnauthorized},
		{"wrong token", wsURL(e, conn.SessionID, conn.AccessToken+"x"), nil, 401, bodyUnauthorized},
		{"garbage token", wsURL(e, conn.SessionID, "not.a.token!"), nil, 401, bodyUnauthorized},
		{"another session's token", wsURL(e, conn.SessionID, fresh.AccessToken), nil, 401, bodyUnauthorized},
		{"another secret", wsURL(e, conn.SessionID, mustAccess(t, []byte("other")).mint("acme", conn.SessionID)), nil, 401, bodyUnauthorized},
		{"another account in the token", wsURL(e, conn.SessionID, access.mint("globex", conn.SessionID)), nil, 401, bodyUnauthorized},
		{"unknown session, valid token", wsURL(e, unknown, access.mint("acme", unknown)), nil, 401, bodyUnauthorized},
		{"session in new", fresh.RealtimeEndpoint, nil, 400, `{"code":10001,"message":"Session state wrong: new"}`},
		{"closed session", closed.RealtimeEndpoint, nil, 400, `{"code":10005,"message":"Session state wrong: closed"}`},
		{"foreign origin", conn.RealtimeEndpoint, http.Header{"Origin": {"https://evil.example.com"}}, 403, `{"code":400562,"message":"forbidden"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := e.dial(tt.url, tt.header)
			require.ErrorIs(t, err, websocket.ErrBadHandshake)
			require.Nil(t, ws)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, tt.want, string(body))
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		})
	}

	t.Run("not a websocket request", func(t *testing.T) {
		resp, err := http.Get(e.http.URL + strings.TrimPrefix(conn.RealtimeEndpoint, "ws://"+strings.TrimPrefix(e.http.URL, "http://")))
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, 400, resp.StatusCode)
		assert.Equal(t, bodyInvalid, string(body))
	})

	info, err := e.mgr.Get(context.Background(), "acme", conn.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connecting, info.State, "no refusal joined the session")
	assert.Empty(t, e.opened)

	t.Run("allowed origins", func(t *testing.T) {
		for _, origin := range []string{"https://app.example.com", e.http.URL} {
			s := e.open2(conn.RealtimeEndpoint, http.Header{"Origin": {origin}})
			s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
		}
	})
}

func (e *env) open2(url string, hdr http.Header) *socket {
	e.t.Helper()
	ws, resp, err := e.dial(url, hdr)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusSwitchingProtocols, resp.StatusCode)
	e.t.Cleanup(func() { ws.Close() })
	return &socket{t: e.t, ws: ws}
}

func TestSocketLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connecting("key-acme")
	s := e.open(c.RealtimeEndpoint)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	opened := <-e.opened
	assert.Equal(t, realtime.SocketInfo{Account: testAccts["key-acme"], SessionHash: session.ShortHash(c.SessionID)}, opened)
	assert.NotContains(t, opened.SessionHash, c.SessionID)

	info, err := e.mgr.Get(context.Background(), "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connected, info.State, "opening the socket joins the session")

	// Client messages.
	s.send(`{"type":"session.keep_alive"}`)
	s.send(`{"type":"agent.speak","text":"Hello, world"}`)
	start := s.message()
	assert.Equal(t, realtime.ServerMessage{Type: realtime.TypeStartTalking, EventType: realtime.TypeStartTalking, TaskID: start.TaskID, DurationMS: 770}, start)
	assert.Regexp(t, taskIDPattern, start.TaskID)
	e.clock.Advance(770 * time.Millisecond)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + start.TaskID + `","duration_ms":770,"interrupted":false}`)

	s.send(`{"type":"agent.speak","text":"` + strings.Repeat("word ", 100) + `"}`)
	long := s.message()
	assert.Equal(t, int64(400*70), long.DurationMS)
	e.clock.Advance(1234 * time.Millisecond)
	s.send(`{"type":"agent.interrupt"}`)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + long.TaskID + `","duration_ms":1234,"interrupted":true}`)
	s.send(`{"type":"agent.interrupt"}`) // silent: nothing to say

	for _, bad := range []string{`{"type":"agent.dance"}`, `not json`, `{"type":"agent.speak"}`, `{"type":"agent.speak","text":""}`, `[]`, `{"type":5}`} {
		s.send(bad)
		s.expect(`{"type":"error","event_type":"error","code":400175,"message":"Invalid parameter"}`)
	}
	require.NoError(t, s.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"session.keep_alive"}`)))
	s.expect(`{"type":"error","event_type":"error","code":400175,"message":"Invalid parameter"}`)

	// A REST task reaches the socket too, and a newer task cuts the current one.
	var t1, t2 taskResponse
	e.data(e.post("key-acme", PathTask, `{"session_id":"`+c.SessionID+`","text":"one two three"}`), &t1)
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t1.TaskID + `","duration_ms":770}`)
	e.clock.Advance(100 * time.Millisecond)
	e.data(e.post("key-acme", PathTask, `{"session_id":"`+c.SessionID+`","text":"four","task_mode":"async","task_type":"chat"}`), &t2)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t1.TaskID + `","duration_ms":100,"interrupted":true}`)
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t2.TaskID + `","duration_ms":500}`)
	assert.Equal(t, int64(500), t2.DurationMS)

	// Stop: the speech ends, then closing, closed and the close frame.
	require.Equal(t, 200, e.post("key-acme", PathStop, `{"session_id":"`+c.SessionID+`"}`).status)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t2.TaskID + `","duration_ms":0,"interrupted":true}`)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"stop"}`)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"stop"}`)
	ce := s.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
	assert.Equal(t, "session closed", ce.Text)
	assert.Equal(t, opened, <-e.closed)
	assert.Equal(t, 0, e.clock.Pending(), "no speech timer left")
}

func TestSocketDropLeavesSessionConnected(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.connect("key-acme")
	<-e.opened
	s.ws.Close() // dropped without a close frame
	<-e.closed
	info, err := e.mgr.Get(context.Background(), "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connected, info.State)

	// Reopen with the same token: connected again, first message first.
	s2 := e.open(c.RealtimeEndpoint)
	s2.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
}

func TestReconnectReplacesSocket(t *testing.T) {
	e := newEnv(t, nil)
	c, old := e.connect("key-acme")
	first := <-e.opened
	s := e.open(c.RealtimeEndpoint)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	ce := old.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
	assert.Equal(t, "replaced by a new connection", ce.Text)
	assert.Equal(t, first, <-e.closed)

	// Events now reach the new socket only.
	s.send(`{"type":"agent.speak","text":"hi"}`)
	assert.Equal(t, realtime.TypeStartTalking, s.message().Type)
}

func TestOversizedFrame(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Realtime.MaxMessageBytes = 1024 })
	c, s := e.connect("key-acme")
	s.send(`{"type":"agent.speak","text":"` + strings.Repeat("a", 2000) + `"}`)
	ce := s.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
	info, err := e.mgr.Get(context.Background(), "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connected, info.State, "the session survives its socket")
}

func TestUnansweredPingsDropTheSocket(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Realtime.PingInterval = 20 * time.Millisecond
		c.Realtime.PongTimeout = 60 * time.Millisecond
	})
	c, s := e.connect("key-acme")
	<-e.opened
	// The client reads nothing from now on, so it answers no ping (gorilla
	// answers pings only while reading) and the server's read deadline
	// passes.
	_ = s
	select {
	case <-e.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the socket was not dropped")
	}
	info, err := e.mgr.Get(context.Background(), "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connected, info.State)
}

func TestShutdown(t *testing.T) {
	t.Run("server shutdown closes sockets with 1001", func(t *testing.T) {
		e := newEnv(t, nil)
		c, s := e.connect("key-acme")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- e.srv.Shutdown(ctx) }()
		ce := s.closeError()
		require.NotNil(t, ce)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
		require.NoError(t, <-done)
		// New sockets are refused with a JSON 503.
		_, resp, err := e.dial(c.RealtimeEndpoint, nil)
		require.ErrorIs(t, err, websocket.ErrBadHandshake)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, 503, resp.StatusCode)
		assert.Equal(t, `{"code":400558,"message":"API connection error"}`, string(body))
	})
	t.Run("manager close sends closed first", func(t *testing.T) {
		e := newEnv(t, nil)
		_, s := e.connect("key-acme")
		require.NoError(t, e.mgr.Close(context.Background()))
		s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"shutdown"}`)
		s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"shutdown"}`)
		ce := s.closeError()
		require.NotNil(t, ce)
		assert.Equal(t, 1000, ce.Code)
		require.NoError(t, e.srv.Shutdown(context.Background()))
		assert.Equal(t, 0, e.lim.heldCount())
	})
}

// TestSocketWithBearerToken: HeyGen's SDK 2.x opens the socket with the
// bearer token it was built with as session_token, and extra query
// parameters: the token that created the session opens it without being
// spent; any other token (unused, bound to another session, another
// account's) is 401.
func TestSocketWithBearerToken(t *testing.T) {
	e := newEnv(t, nil)
	token := e.mintToken("key-acme")
	var c created
	e.data(e.do("POST", PathNew, bearer(token), map[string]any{}), &c)
	r := e.do("POST", PathStart, bearer(token), map[string]string{"session_id": c.SessionID})
	require.Equal(t, http.StatusOK, r.status, r.body)
	sdkURL := func(id, tok string) string {
		return wsURL(e, id, tok) + "&silence_response=false&push_to_talk=false&arch_version=v2"
	}

	s := e.open(sdkURL(c.SessionID, token))
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	s.send(`{"type":"agent.speak","text":"hi"}`)
	m := s.message()
	assert.Equal(t, realtime.TypeStartTalking, m.Type)
	assert.Equal(t, realtime.TypeStartTalking, m.EventType)
	// Not spent: the token still authorises its session's calls.
	r = e.do("POST", PathKeepAlive, bearer(token), map[string]string{"session_id": c.SessionID})
	require.Equal(t, http.StatusOK, r.status, r.body)

	// An unused token of the same account, a token bound to another
	// session, another account's token, and a random string: 401, and
	// nothing changes.
	other := e.connecting("key-acme")
	otherToken := e.mintToken("key-acme")
	var bound created
	e.data(e.do("POST", PathNew, bearer(otherToken), map[string]any{}), &bound)
	for _, tok := range []string{e.mintToken("key-acme"), otherToken, e.mintToken("key-globex"), "sst_nope"} {
		_, resp, err := e.dial(sdkURL(c.SessionID, tok), nil)
		require.Error(t, err)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, `{"code":400112,"message":"Unauthorized"}`, string(body))
	}
	_, resp, err := e.dial(sdkURL(other.SessionID, e.mintToken("key-globex")), nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "another account's session is unknown to the token")
	info, err := e.mgr.Get(context.Background(), "acme", other.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connecting, info.State)
}
