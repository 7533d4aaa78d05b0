package clustertest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wsMessage is a realtime message as a client decodes it.
type wsMessage struct {
	Type        string `json:"type"`
	State       string `json:"state"`
	TaskID      string `json:"task_id"`
	DurationMS  int64  `json:"duration_ms"`
	Interrupted bool   `json:"interrupted"`
}

// listener is a realtime socket whose every message is kept, in order.
type listener struct {
	conn *websocket.Conn
	in   chan wsMessage
}

func listen(t *testing.T, endpoint string) *listener {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(endpoint, nil)
	require.NoError(t, err)
	resp.Body.Close()
	l := &listener{conn: conn, in: make(chan wsMessage, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(l.in)
		for {
			var m wsMessage
			if err := conn.ReadJSON(&m); err != nil {
				return
			}
			l.in <- m
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return l
}

// next returns the next message; the guard covers the longest speech the
// tests wait for, a node's Redis round trips and a loaded machine.
func (l *listener) next(t *testing.T) wsMessage {
	t.Helper()
	select {
	case m, ok := <-l.in:
		require.True(t, ok, "the socket closed")
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("no realtime message within 15s")
		return wsMessage{}
	}
}

type taskAnswer struct {
	TaskID     string `json:"task_id"`
	DurationMS int64  `json:"duration_ms"`
}

func task(t *testing.T, n *node, auth, id, text string) taskAnswer {
	t.Helper()
	a := call(n.base, "POST", "/v1/streaming.task", auth, map[string]any{"session_id": id, "text": text})
	require.Equal(t, 200, a.status, "streaming.task on %s: %v", n.name, a)
	var ans taskAnswer
	require.NoError(t, json.Unmarshal(a.data, &ans))
	require.NotEmpty(t, ans.TaskID)
	return ans
}

// TestSpeechAcrossNodes: the socket is on n0, the tasks and interrupts go
// through n1 and n2. The socket hears each task begin and end once, with
// the task_id and duration_ms the other node answered; an interrupt
// through another node cuts the speech short; and after the socket
// reopens on another node mid-speech, the speech's end reaches it there.
func TestSpeechAcrossNodes(t *testing.T) {
	c := newCluster(t, 3)
	n0, n1, n2 := c.nodes[0], c.nodes[1], c.nodes[2]
	const auth = "key-a0"
	d := newSession(t, n1, auth)
	require.Equal(t, 200, sessionCall(t, n1, "/v1/streaming.start", auth, d.SessionID).status)
	s := listen(t, onNode(t, d.RealtimeEndpoint, n0))
	assert.Equal(t, wsMessage{Type: "session.state_updated", State: "connected"}, s.next(t))

	// A task through n1, spoken to its end on n0's socket.
	t1 := task(t, n1, auth, d.SessionID, "Hello, world")
	assert.Equal(t, int64(770), t1.DurationMS)
	assert.Equal(t, wsMessage{Type: "avatar_start_talking", TaskID: t1.TaskID, DurationMS: 770}, s.next(t))
	assert.Equal(t, wsMessage{Type: "avatar_stop_talking", TaskID: t1.TaskID, DurationMS: 770}, s.next(t))

	// A long task through n1, interrupted through n2.
	t2 := task(t, n1, auth, d.SessionID, strings.Repeat("word ", 100))
	assert.Equal(t, int64(28000), t2.DurationMS)
	assert.Equal(t, wsMessage{Type: "avatar_start_talking", TaskID: t2.TaskID, DurationMS: 28000}, s.next(t))
	require.Equal(t, 200, sessionCall(t, n2, "/v1/streaming.interrupt", auth, d.SessionID).status)
	stop := s.next(t)
	assert.Equal(t, wsMessage{Type: "avatar_stop_talking", TaskID: t2.TaskID, DurationMS: stop.DurationMS, Interrupted: true}, stop)
	assert.Less(t, stop.DurationMS, t2.DurationMS, "cut short")

	// Another long task; the socket drops and reopens on n2; an interrupt
	// through n1 reaches it there.
	t3 := task(t, n0, auth, d.SessionID, strings.Repeat("word ", 100))
	assert.Equal(t, wsMessage{Type: "avatar_start_talking", TaskID: t3.TaskID, DurationMS: 28000}, s.next(t))
	s.conn.Close()
	s2 := listen(t, onNode(t, d.RealtimeEndpoint, n2))
	assert.Equal(t, wsMessage{Type: "session.state_updated", State: "connected"}, s2.next(t))
	require.Equal(t, 200, sessionCall(t, n1, "/v1/streaming.interrupt", auth, d.SessionID).status)
	stop = s2.next(t)
	assert.Equal(t, wsMessage{Type: "avatar_stop_talking", TaskID: t3.TaskID, DurationMS: stop.DurationMS, Interrupted: true}, stop)

	// A stop through n1: nothing else was said, then closing and closed.
	require.Equal(t, 200, sessionCall(t, n1, "/v1/streaming.stop", auth, d.SessionID).status)
	assert.Equal(t, wsMessage{Type: "session.state_updated", State: "closing"}, s2.next(t))
	assert.Equal(t, wsMessage{Type: "session.state_updated", State: "closed"}, s2.next(t))
}
