package liveavatar_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server/liveavatar"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/sessiontest"
)

// connected starts a session of acme on n and opens its LITE socket,
// reading the opening states.
func connected(t *testing.T, c client) (id, token string, ws *liteConn, st started) {
	t.Helper()
	id, token = c.token("key-acme", nil)
	st = c.start(token)
	ws, _, err := dialLite(t, st.WSURL)
	require.NoError(t, err)
	require.Equal(t, "connecting", ws.next().State)
	require.Equal(t, "connected", ws.next().State)
	return id, token, ws, st
}

// TestSocketSpeech sends the web SDK's frames for 1.4 s of audio and
// checks agent.speak_started at once and agent.speak_ended when the
// speech clock has moved the audio's own duration (not a millisecond
// before), both with the utterance's event_id and one task. A bad frame
// after each step is answered by an error event, which orders what the
// socket sent before it.
func TestSocketSpeech(t *testing.T) {
	clock := sessiontest.NewClock(time.Unix(1_700_000_000, 0))
	n := newNode(t, nodeOptions{socket: func(c *liveavatar.Config) { c.Clock = clock }})
	c := client{t: t, base: n.httpServer()}
	_, _, ws, _ := connected(t, c)
	barrier := func() {
		t.Helper()
		ws.send(map[string]any{"type": "no.such.type"})
		require.Equal(t, "error", ws.next().Type, "nothing before the barrier's answer")
	}

	ws.send(map[string]any{"type": "agent.speak", "event_id": "e1", "audio": pcm(400 * time.Millisecond)})
	ws.send(map[string]any{"type": "agent.speak", "event_id": "e1", "audio": pcm(time.Second)})
	ws.send(map[string]any{"type": "agent.speak_end", "event_id": "e1"})
	started := ws.next()
	assert.Equal(t, "agent.speak_started", started.Type)
	assert.Equal(t, "e1", started.EventID)
	assert.NotEmpty(t, started.Task.ID)
	barrier()

	clock.Advance(1400*time.Millisecond - time.Millisecond)
	barrier()
	clock.Advance(time.Millisecond)
	ended := ws.next()
	assert.Equal(t, "agent.speak_ended", ended.Type)
	assert.Equal(t, "e1", ended.EventID)
	assert.Equal(t, started.Task.ID, ended.Task.ID)
}

// TestSocketInterrupt checks agent.interrupt during speech, the listening
// commands and session.keep_alive (no error), then a server-side close.
func TestSocketInterrupt(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	id, _, ws, _ := connected(t, c)

	ws.send(map[string]any{"type": "agent.start_listening", "event_id": "l1"})
	ws.send(map[string]any{"type": "agent.speak", "event_id": "e2", "audio": pcm(10 * time.Second)})
	ws.send(map[string]any{"type": "agent.speak_end", "event_id": "e2"})
	assert.Equal(t, event{Type: "agent.speak_started", EventID: "e2"}, strip(ws.next()))
	ws.send(map[string]any{"type": "agent.interrupt", "event_id": "i1"})
	assert.Equal(t, event{Type: "agent.speak_interrupted", EventID: "e2"}, strip(ws.next()))
	ws.send(map[string]any{"type": "agent.stop_listening", "event_id": "l2"})
	ws.send(map[string]any{"type": "session.keep_alive", "event_id": "k1"})
	ws.send(map[string]any{"type": "agent.interrupt"}) // nothing speaking: no event

	// The server closes the session (the account's API key): closing,
	// closed, then the socket closes.
	c.call("POST", liveavatar.PathStop, "key-acme", map[string]any{"session_id": id, "reason": "USER_CLOSED"}).data(t, 200, nil)
	assert.Equal(t, event{Type: "session.state_updated", State: "closing", Reason: "USER_CLOSED"}, strip(ws.next()))
	assert.Equal(t, event{Type: "session.state_updated", State: "closed", Reason: "USER_CLOSED"}, strip(ws.next()))
	code, _ := ws.closed()
	assert.Equal(t, websocket.CloseNormalClosure, code)
}

// TestSocketBadFrames checks that every bad frame gets a typed error event
// and the socket goes on.
func TestSocketBadFrames(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	_, _, ws, _ := connected(t, c)

	for name, frame := range map[string]string{
		"not JSON":              `hello`,
		"JSON array":            `[1,2]`,
		"unknown type":          `{"type":"agent.dance","event_id":"x"}`,
		"speak without audio":   `{"type":"agent.speak","event_id":"x"}`,
		"speak with bad base64": `{"type":"agent.speak","event_id":"x","audio":"%%%"}`,
		"speak with no bytes":   `{"type":"agent.speak","event_id":"x","audio":""}`,
		"speak_end alone":       `{"type":"agent.speak_end","event_id":"x"}`,
		"audio of wrong type":   `{"type":"agent.speak","audio":12}`,
	} {
		require.NoError(t, ws.ws.WriteMessage(websocket.TextMessage, []byte(frame)))
		e := ws.next()
		assert.Equal(t, "error", e.Type, name)
		assert.Equal(t, "invalid_request_error", e.Error.Type, name)
		assert.Equal(t, 400175, e.Error.Code, name)
	}
	require.NoError(t, ws.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}))
	assert.Equal(t, 400175, ws.next().Error.Code)

	// Still served.
	ws.send(map[string]any{"type": "agent.speak", "event_id": "ok", "audio": pcm(50 * time.Millisecond)})
	assert.Equal(t, event{Type: "agent.speak_started", EventID: "ok"}, strip(ws.next()))
}

// TestSocketBounds checks the frame size (1009) and message rate (1008)
// bounds.
func TestSocketBounds(t *testing.T) {
	n := newNode(t, nodeOptions{socket: func(c *liveavatar.Config) {
		c.Socket.MaxMessageBytes = 4096
		c.Socket.MessageRate = 1
		c.Socket.MessageBurst = 3
	}})
	c := client{t: t, base: n.httpServer()}

	_, _, ws, _ := connected(t, c)
	// The write may fail: the server stops reading at the bound.
	_ = ws.ws.WriteJSON(map[string]any{"type": "agent.speak", "audio": strings.Repeat("A", 8192)})
	code, reason := ws.closed()
	assert.Equal(t, websocket.CloseMessageTooBig, code)
	assert.Equal(t, realtime.ReasonTooBig, reason, "the reason, as the Streaming API's socket says it")

	_, _, ws, _ = connected(t, c)
	for range 10 {
		if ws.ws.WriteJSON(map[string]any{"type": "session.keep_alive"}) != nil {
			break
		}
	}
	code, reason = ws.closed()
	assert.Equal(t, websocket.ClosePolicyViolation, code)
	assert.Equal(t, liveavatar.CloseTooManyMessages, reason)
}

// TestSocketRefusals checks the upgrade's refusals: each an envelope, never
// a 101, and the ws_url opens one socket.
func TestSocketRefusals(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	id, token := c.token("key-acme", nil)
	otherID, otherToken := c.token("key-acme", nil)

	refused := func(url string, status, code int) {
		t.Helper()
		_, resp, err := dialLite(t, url)
		require.Error(t, err)
		require.NotNil(t, resp)
		assert.Equal(t, status, resp.StatusCode, url)
		var body [256]byte
		k, _ := resp.Body.Read(body[:])
		assert.Contains(t, string(body[:k]), `"code":`+strconv.Itoa(code), url)
	}
	st := c.start(token)
	wrongSession := strings.Replace(st.WSURL, id, otherID, 1)
	refused(wrongSession, http.StatusUnauthorized, 400112)
	refused(strings.Replace(st.WSURL, "credential=", "credential=x", 1), http.StatusUnauthorized, 400112)

	ws, _, err := dialLite(t, st.WSURL)
	require.NoError(t, err)
	ws.next()
	ws.next()
	refused(st.WSURL, http.StatusBadRequest, 10003) // used

	// Origins other than the server's own are refused.
	st2 := c.start(otherToken)
	h := http.Header{"Origin": {"https://evil.example"}}
	_, resp, err := websocket.DefaultDialer.Dial(st2.WSURL, h)
	require.Error(t, err)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	// A plain GET (no upgrade) is refused without changing the session.
	a := c.call("GET", strings.TrimPrefix(st2.WSURL, "ws://"+strings.TrimPrefix(c.base, "http://")), "", nil)
	a.refused(t, 400, 400175, "")
	assert.Equal(t, "connecting", c.get("key-acme", otherID).State)
}

// TestSocketActivity checks that socket messages count as activity: they
// push the idle deadline (LastActivity) back.
func TestSocketActivity(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	id, _, ws, _ := connected(t, c)
	before, err := n.mgr.Get(t.Context(), "acme", id)
	require.NoError(t, err)
	for _, typ := range []string{"session.keep_alive", "agent.start_listening"} {
		time.Sleep(5 * time.Millisecond) // a later instant on the real clock
		ws.send(map[string]any{"type": typ})
		require.Eventually(t, func() bool {
			now, err := n.mgr.Get(t.Context(), "acme", id)
			return err == nil && now.LastActivity.After(before.LastActivity)
		}, 5*time.Second, 5*time.Millisecond, typ)
		before, err = n.mgr.Get(t.Context(), "acme", id)
		require.NoError(t, err)
	}
}

// TestShutdown checks that Shutdown closes the sockets with 1001 and
// refuses new ones, changing no session.
func TestShutdown(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	id, _, ws, _ := connected(t, c)
	_, token := c.token("key-acme", nil)
	st := c.start(token)

	require.NoError(t, n.la.Shutdown(t.Context()))
	code, reason := ws.closed()
	assert.Equal(t, websocket.CloseGoingAway, code)
	assert.Equal(t, liveavatar.CloseShuttingDown, reason)
	assert.Equal(t, "connected", c.get("key-acme", id).State)

	_, resp, err := dialLite(t, st.WSURL)
	require.Error(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

// TestCloseDuringSpeech stops sessions while their speech ends, many
// times: the close and the speech's timer must not wait for each other
// (a lock-order deadlock would hang here).
func TestCloseDuringSpeech(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	for i := range 20 {
		id, _, ws, _ := connected(t, c)
		ws.send(map[string]any{"type": "agent.speak", "event_id": "s", "audio": pcm(time.Duration(i%4+1) * time.Millisecond)})
		ws.send(map[string]any{"type": "agent.speak_end", "event_id": "s"})
		c.call("POST", liveavatar.PathStop, "key-acme", map[string]any{"session_id": id}).data(t, http.StatusOK, nil)
		code, _ := ws.closed()
		assert.Equal(t, websocket.CloseNormalClosure, code)
	}
}

// TestPythonPluginFlow replays what LiveAvatar's LiveKit agents plugin
// sends (its code, read at livekit/agents 1.7.0): a token with
// livekit_config, start with {session_id}, a fresh event_id on every
// chunk and on speak_end, listening around the speech, keep-alive, and a
// stop with {session_id, reason: USER_DISCONNECTED}.
func TestPythonPluginFlow(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	id, token := c.token("key-acme", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711", "is_sandbox": false,
		"livekit_config": map[string]any{"livekit_room": "room", "livekit_url": "wss://lk.example", "livekit_client_token": "jwt"}})
	var st started
	c.call("POST", liveavatar.PathStart, token, map[string]any{"session_id": id}).data(t, http.StatusCreated, &st)
	ws, _, err := dialLite(t, st.WSURL)
	require.NoError(t, err)
	for ws.next().State != "connected" { // the plugin waits for connected
	}
	ws.send(map[string]any{"type": "agent.speak", "event_id": "u1", "audio": pcm(600 * time.Millisecond)})
	ws.send(map[string]any{"type": "agent.speak", "event_id": "u2", "audio": pcm(time.Second)})
	ws.send(map[string]any{"type": "agent.speak_end", "event_id": "u3"})
	ws.send(map[string]any{"type": "agent.start_listening", "event_id": "u4"})
	started := ws.next()
	ended := ws.next()
	assert.Equal(t, event{Type: "agent.speak_started", EventID: "u1"}, strip(started), "one utterance, named by its first chunk")
	assert.Equal(t, event{Type: "agent.speak_ended", EventID: "u1"}, strip(ended))
	assert.GreaterOrEqual(t, ended.at.Sub(started.at), 1500*time.Millisecond)
	ws.send(map[string]any{"type": "agent.stop_listening", "event_id": "u5"})
	ws.send(map[string]any{"type": "session.keep_alive", "event_id": "u6"})
	c.call("POST", liveavatar.PathStop, token, map[string]any{"session_id": id, "reason": "USER_DISCONNECTED"}).data(t, http.StatusOK, nil)
	assert.Equal(t, event{Type: "session.state_updated", State: "closing", Reason: "USER_DISCONNECTED"}, strip(ws.next()))
	assert.Equal(t, event{Type: "session.state_updated", State: "closed", Reason: "USER_DISCONNECTED"}, strip(ws.next()))
}
