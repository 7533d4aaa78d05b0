package realtime

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

func TestSocketStateCommands(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create("acme")
	// A socket whose session is no longer connected (a client racing a
	// stop): its messages are answered with the state's error event.
	_, err := e.mgr.Stop(context.Background(), "acme", id)
	require.NoError(t, err)
	cl, s := e.rawClient("acme", id)
	cl.applyState(fsm.Connected, 1, session.ReasonNone)
	cl.markReady()
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	for _, msg := range []string{`{"type":"agent.speak","text":"late"}`, `{"type":"agent.interrupt"}`, `{"type":"session.keep_alive"}`} {
		s.send(msg)
		s.expect(`{"type":"error","event_type":"error","code":10005,"message":"Session state wrong: closed"}`)
	}
	s.send(`{"type":"nope"}`)
	s.expect(`{"type":"error","event_type":"error","code":400175,"message":"Invalid parameter"}`)
	assert.Equal(t, 0, e.clock.Pending(), "nothing was spoken")
	cl.conn.Kill()
}

// TestSlowClientIsClosed fills a socket's send queue while its writer is
// not running: the next message does not block; the socket is closed with
// 1008 and a reason ahead of what was queued, then dropped.
func TestSlowClientIsClosed(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Socket.SendQueue = 4 })
	serverSide := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		require.NoError(t, err)
		serverSide <- ws
	}))
	defer hs.Close()
	peer, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	require.NoError(t, err)
	defer peer.Close()
	cl := e.hub.newClient(<-serverSide, paid("acme"), "s1")
	cl.applyState(fsm.Connected, 2, session.ReasonNone)
	cl.markReady() // one message queued
	for i := 0; i < 3; i++ {
		cl.sendData([]byte(`{}`))
	}
	require.Empty(t, cl.conn.urgent, "the queue is full, not overflowing")
	cl.sendData([]byte(`{}`))
	require.Len(t, cl.conn.urgent, 1, "an overflow closes the socket")
	cl.sendData([]byte(`{}`)) // nothing more is queued, nothing blocks

	e.hub.wg.Add(2)
	cl.conn.Start(&e.hub.wg)
	s := &socket{t: t, ws: peer}
	ce := s.closeError()
	require.NotNil(t, ce, "a close frame, not a drop")
	assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
	assert.Equal(t, ReasonSlowReader, ce.Text)
	<-cl.ctx.Done()
}

// TestClientRulesCloseTheSocket: a text frame that is not UTF-8 closes the
// socket with 1007, more messages than the rate allows with 1008; what came
// after is not served and the session is untouched.
func TestClientRulesCloseTheSocket(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Socket.MessageRate, c.Socket.MessageBurst = 0.01, 3 })
	id, s := e.connect("acme")
	s.send("{\"type\":\"agent.speak\",\"text\":\"\xff\xc0\"}")
	ce := s.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseInvalidFramePayloadData, ce.Code)
	assert.Equal(t, ReasonInvalidUTF8, ce.Text)
	assert.Equal(t, 0, e.clock.Pending(), "nothing was spoken")

	s = e.open("acme", id)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	for range 3 {
		s.settle() // within the burst: served
	}
	s.send(`{"type":"agent.speak","text":"over the bound"}`)
	s.send(`{"type":"agent.speak","text":"after the close"}`)
	ce = s.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
	assert.Equal(t, ReasonTooManyMessages, ce.Text)
	assert.Equal(t, 0, e.clock.Pending(), "nothing was spoken")
	info, err := e.mgr.Get(context.Background(), "acme", id)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connected, info.State)
}

// TestReasonReachesTheSocket: closing and closed carry the reason, on the
// live socket and in the first message of a socket opened late.
func TestReasonReachesTheSocket(t *testing.T) {
	e := newEnv(t, nil)
	id, s := e.connect("acme")
	_, err := e.mgr.Stop(context.Background(), "acme", id)
	require.NoError(t, err)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"stop"}`)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"stop"}`)
	late := e.open("acme", id)
	late.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"stop"}`)
}

// TestEarlyMessagesWaitForTheFirstState: a message for a socket that has
// not received its first state_updated is held until then.
func TestEarlyMessagesWaitForTheFirstState(t *testing.T) {
	e := newEnv(t, nil)
	cl, s := e.rawClient("acme", "s1")
	cl.sendData([]byte(`{"type":"early"}`))
	cl.applyState(fsm.Connecting, 2, session.ReasonNone)
	cl.applyState(fsm.Connected, 3, session.ReasonNone)
	cl.applyState(fsm.Connecting, 2, session.ReasonNone) // stale: ignored
	cl.markReady()
	cl.applyState(fsm.Connected, 3, session.ReasonNone) // the same epoch again: ignored
	cl.applyState(fsm.Closing, 4, session.ReasonNone)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	s.expect(`{"type":"early"}`)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closing"}`)
	cl.conn.Kill()
}

func TestServerMessageDecodes(t *testing.T) {
	for _, raw := range []string{
		string(encodeState(fsm.Connected, session.ReasonNone)),
		string(encodeState(fsm.Closed, session.ReasonIdle)),
		string(encodeStartTalking("t", 5*time.Millisecond)),
		string(encodeStopTalking("t", 5*time.Millisecond, true)),
		string(encodeError(nil)),
	} {
		var m ServerMessage
		require.NoError(t, json.Unmarshal([]byte(raw), &m), raw)
		assert.NotEmpty(t, m.Type)
		assert.Equal(t, m.Type, m.EventType, "every event carries event_type equal to type")
	}
	// The reason goes with closing and closed only.
	assert.Equal(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"idle"}`, string(encodeState(fsm.Closed, session.ReasonIdle)))
	assert.Equal(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`, string(encodeState(fsm.Connected, session.ReasonStop)))
	assert.Equal(t, `{"type":"session.state_updated","event_type":"session.state_updated","state":"closing"}`, string(encodeState(fsm.Closing, session.ReasonNone)))
	assert.Equal(t, `{"type":"error","event_type":"error","code":500000,"message":"Internal server error"}`, string(encodeError(io.EOF)))
}

// TestOnRelay feeds a node's relay handler directly: malformed commands
// change nothing, and a command delivered twice is applied once.
func TestOnRelay(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Relay = nopRelay{} })
	id, s := e.connect("acme")

	e.hub.onRelay("", RelayMessage{Kind: RelaySpeak, TaskID: "t0", Duration: time.Second})
	e.hub.onRelay(id, RelayMessage{Kind: "dance", TaskID: "t0", Duration: time.Second})
	e.hub.onRelay(id, RelayMessage{Kind: RelaySpeak, Duration: time.Second})
	assert.Equal(t, 0, e.clock.Pending(), "nothing spoken")

	e.hub.onRelay(id, RelayMessage{Kind: RelaySpeak, TaskID: "t1", Duration: 2 * time.Second})
	e.hub.onRelay(id, RelayMessage{Kind: RelaySpeak, TaskID: "t1", Duration: 2 * time.Second})
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"t1","duration_ms":2000}`)
	assert.Equal(t, 1, e.clock.Pending(), "the repeat started nothing")
	e.hub.onRelay(id, RelayMessage{Kind: RelaySpeak, TaskID: "t2", Duration: -time.Second})
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"t1","duration_ms":0,"interrupted":true}`)
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"t2","duration_ms":0}`)
	e.clock.Advance(0)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"t2","duration_ms":0,"interrupted":false}`)
	s.settle()
}

// TestOnRelayReplace feeds announcements to a node directly: malformed
// ones and the socket's own change nothing; another token closes the
// socket only once its own announcement was heard.
func TestOnRelayReplace(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Relay = nopRelay{} })
	cl, s := e.rawClient("acme", "s1")
	cl.token = "mine"
	_, ok := e.hub.register(cl)
	require.True(t, ok)
	cl.applyState(fsm.Connected, 1, session.ReasonNone)
	cl.markReady()
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)

	e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: "theirs"})
	s.settle() // not announced yet: the announcement is older than this socket
	for _, msg := range []struct {
		session string
		msg     RelayMessage
	}{
		{"s1", RelayMessage{Kind: RelayReplace, Socket: "mine"}}, // announced now
		{"", RelayMessage{Kind: RelayReplace, Socket: "theirs"}},
		{"s1", RelayMessage{Kind: RelayReplace}},
		{"s2", RelayMessage{Kind: RelayReplace, Socket: "theirs"}},
		{"s1", RelayMessage{Kind: "dance", Socket: "theirs"}},
		{"s1", RelayMessage{Kind: RelayReplace, Socket: "mine"}}, // a repeat
	} {
		e.hub.onRelay(msg.session, msg.msg)
	}
	s.settle()
	require.Same(t, cl, e.hub.get("s1"))

	e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: "theirs"})
	ce := s.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
	assert.Equal(t, "replaced by a new connection", ce.Text)
	assert.Nil(t, e.hub.get("s1"))
	assert.Equal(t, SocketInfo{Account: paid("acme"), SessionHash: session.ShortHash("s1")}, <-e.closed)
	e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: "other"}) // nothing left to close
}

// TestLateOwnAnnouncementIsIgnored: an announcement of a socket this node
// already replaced, or closed, that lands on the relay after the session's
// newer socket was announced (its Publish timed out, yet reached Redis)
// leaves the newer socket open.
func TestLateOwnAnnouncementIsIgnored(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retired func(e *env, old *client)
	}{
		{"replaced here", func(*env, *client) {}},
		{"closed before the next socket", func(e *env, old *client) { e.hub.remove(old) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Relay = nopRelay{} })
			old, _ := e.rawClient("acme", "s1")
			old.token = "first"
			_, ok := e.hub.register(old)
			require.True(t, ok)
			tc.retired(e, old)

			cl, s := e.rawClient("acme", "s1")
			cl.token = "second"
			_, ok = e.hub.register(cl)
			require.True(t, ok)
			cl.applyState(fsm.Connected, 1, session.ReasonNone)
			cl.markReady()
			s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
			e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: "second"}) // announced

			e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: "first"}) // late
			s.settle()
			require.Same(t, cl, e.hub.get("s1"), "the newer socket stays")

			// Another node's socket still replaces it.
			e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: "elsewhere"})
			ce := s.closeError()
			require.NotNil(t, ce)
			assert.Equal(t, "replaced by a new connection", ce.Text)
		})
	}
}

// TestLateAnnouncementOfAnotherNodeIsIgnored: node B announced a1, whose
// Publish gave up yet reached the relay late, after B's next socket a2;
// meanwhile this node's socket x was announced. The late a1 closes nothing
// here (it comes after B's a2), so x, the newest, survives.
func TestLateAnnouncementOfAnotherNodeIsIgnored(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Relay = nopRelay{} })
	e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: "nodeB.2"}) // a2, no socket here yet

	x, s := e.rawClient("acme", "s1")
	x.token = e.hub.order.newToken()
	_, ok := e.hub.register(x)
	require.True(t, ok)
	x.applyState(fsm.Connected, 1, session.ReasonNone)
	x.markReady()
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: x.token}) // x announced

	e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: "nodeB.1"}) // a1, late
	e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: "nodeB.2"}) // a repeat of a2
	s.settle()
	require.Same(t, x, e.hub.get("s1"), "x stays")

	e.hub.onRelay("s1", RelayMessage{Kind: RelayReplace, Socket: "nodeB.3"}) // B's next socket
	ce := s.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, "replaced by a new connection", ce.Text)
}
