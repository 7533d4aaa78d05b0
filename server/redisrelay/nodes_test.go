package redisrelay

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/fakeclock"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/internal/wstest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/redisstore"
)

// fakeClock is a realtime.Clock that moves only when Advance is called; due
// timers run in Advance, in order. Every timer set is reported on armed, so
// that a test knows when every node started a speech.
type fakeClock struct {
	*fakeclock.Clock
	armed <-chan time.Duration
}

func newFakeClock() *fakeClock {
	c, armed := fakeclock.NewReporting(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), 100)
	return &fakeClock{Clock: c, armed: armed}
}

// started waits until n more timers of d are set (a guard of 5 s): n nodes
// started a speech of d.
func (c *fakeClock) started(t *testing.T, d time.Duration, n int) {
	t.Helper()
	for range n {
		select {
		case got := <-c.armed:
			require.Equal(t, d, got)
		case <-time.After(5 * time.Second):
			t.Fatalf("no timer of %v within 5s", d)
		}
	}
}

var (
	accounts = server.AccountsByKey{"key-acme": {Name: "acme", Plan: limits.Plan{Name: "pro", MaxConcurrent: 10}}}
	avatars  = session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	secret   = []byte("0123456789abcdef0123456789abcdef")
)

// node is one server node: its own session store, Manager, Relay and
// Server on the shared Redis, served over HTTP.
type node struct {
	srv  *server.Server
	http *httptest.Server
}

// newNodes starts n nodes of one service on Redis (sessions in
// redisstore, speech through the Relay) sharing one in-process limiter and
// one fake speech clock.
func newNodes(t *testing.T, n int, clock realtime.Clock) []*node {
	t.Helper()
	return newNodesOn(t, redistest.Start(t), n, clock)
}

// newNodesOn starts n nodes as newNodes does, on rds.
func newNodesOn(t *testing.T, rds *redistest.Server, n int, clock realtime.Clock) []*node {
	t.Helper()
	lim := limits.NewMemory(limits.MemoryConfig{SweepInterval: -1})
	t.Cleanup(func() { lim.Close() })
	var nodes []*node
	for range n {
		store, err := redisstore.New(rds.Client(), redisstore.Config{Prefix: "rt"})
		require.NoError(t, err)
		mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars, Store: store})
		require.NoError(t, err)
		relay, err := New(rds.Client(), Config{Prefix: "rt"})
		require.NoError(t, err)
		srv, err := server.New(server.Config{
			Manager: mgr, Accounts: accounts, Avatars: avatars, Secret: secret, Clock: clock, Relay: relay,
		})
		require.NoError(t, err)
		nd := &node{srv: srv, http: httptest.NewServer(srv)}
		t.Cleanup(func() {
			nd.http.Close()
			require.NoError(t, mgr.Close(context.Background()))
			require.NoError(t, srv.Shutdown(context.Background()))
			require.NoError(t, relay.Close())
			require.NoError(t, store.Close())
		})
		nodes = append(nodes, nd)
	}
	return nodes
}

// post calls the API and returns the HTTP status and the envelope's data.
func (n *node) post(t *testing.T, path, body string) (int, json.RawMessage) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.http.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", "key-acme")
	resp, err := n.http.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(raw, &env), "%s", raw)
	return resp.StatusCode, env.Data
}

// on returns endpoint with n's host.
func (n *node) on(t *testing.T, endpoint string) string {
	t.Helper()
	return wstest.OnHost(t, endpoint, n.http.URL)
}

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dial(t *testing.T, endpoint string) *wsClient {
	t.Helper()
	return &wsClient{t: t, conn: wstest.Dial(t, endpoint).WS}
}

// expect reads the next message (a guard deadline of 5 s) and compares it.
func (c *wsClient) expect(want string) {
	c.t.Helper()
	wstest.Expect(c.t, c.conn, want)
}

type taskAnswer struct {
	TaskID     string `json:"task_id"`
	DurationMS int64  `json:"duration_ms"`
}

// TestSpeechAcrossNodes runs two nodes on one Redis: the socket opens on
// a, tasks and interrupts are sent through b, and a's socket hears every
// event once, with what b answered. Then the socket moves to b mid-speech
// and hears the end there.
func TestSpeechAcrossNodes(t *testing.T) {
	clock := newFakeClock()
	nodes := newNodes(t, 2, clock)
	a, b := nodes[0], nodes[1]

	status, data := b.post(t, server.PathNew, `{}`)
	require.Equal(t, http.StatusOK, status)
	var created struct {
		SessionID        string `json:"session_id"`
		RealtimeEndpoint string `json:"realtime_endpoint"`
	}
	require.NoError(t, json.Unmarshal(data, &created))
	named := `{"session_id":"` + created.SessionID + `"`
	status, _ = b.post(t, server.PathStart, named+`}`)
	require.Equal(t, http.StatusOK, status)
	s := dial(t, a.on(t, created.RealtimeEndpoint))
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)

	task := func(n *node, text string) taskAnswer {
		t.Helper()
		status, data := n.post(t, server.PathTask, named+`,"text":"`+text+`"}`)
		require.Equal(t, http.StatusOK, status, "%s", data)
		var ans taskAnswer
		require.NoError(t, json.Unmarshal(data, &ans))
		return ans
	}

	// A task through b, spoken to its end on a's socket. The clock moves
	// once both nodes started the task.
	t1 := task(b, "Hello, world")
	assert.Equal(t, int64(770), t1.DurationMS)
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t1.TaskID + `","duration_ms":770}`)
	clock.started(t, 770*time.Millisecond, 2)
	clock.Advance(770 * time.Millisecond)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t1.TaskID + `","duration_ms":770,"interrupted":false}`)

	// An interrupt through b cuts a task through b short.
	t2 := task(b, strings.Repeat("word ", 100))
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t2.TaskID + `","duration_ms":28000}`)
	clock.started(t, 28*time.Second, 2)
	clock.Advance(1234 * time.Millisecond)
	status, _ = b.post(t, server.PathInterrupt, named+`}`)
	require.Equal(t, http.StatusOK, status)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t2.TaskID + `","duration_ms":1234,"interrupted":true}`)

	// The socket drops and reopens on b mid-speech: b's socket hears the
	// end of the task that a's socket heard begin.
	t3 := task(a, strings.Repeat("a", 100))
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t3.TaskID + `","duration_ms":7000}`)
	clock.started(t, 7*time.Second, 2)
	s.conn.Close()
	s2 := dial(t, b.on(t, created.RealtimeEndpoint))
	s2.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	clock.Advance(7 * time.Second)
	s2.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t3.TaskID + `","duration_ms":7000,"interrupted":false}`)

	// An agent.speak on the moved socket, then a stop through a: the
	// speech ends on every node before the session closes.
	require.NoError(t, s2.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"agent.speak","text":"four"}`)))
	s2.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var start realtime.ServerMessage
	require.NoError(t, s2.conn.ReadJSON(&start))
	assert.Equal(t, realtime.ServerMessage{Type: realtime.TypeStartTalking, EventType: realtime.TypeStartTalking, TaskID: start.TaskID, DurationMS: 500}, start)
	clock.started(t, 500*time.Millisecond, 2)
	status, _ = a.post(t, server.PathStop, named+`}`)
	require.Equal(t, http.StatusOK, status)
	s2.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + start.TaskID + `","duration_ms":0,"interrupted":true}`)
	s2.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"stop"}`)
	s2.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"stop"}`)
}

// started creates and starts a session through n and returns its id and
// realtime endpoint.
func started(t *testing.T, n *node) (id, endpoint string) {
	t.Helper()
	status, data := n.post(t, server.PathNew, `{}`)
	require.Equal(t, http.StatusOK, status)
	var created struct {
		SessionID        string `json:"session_id"`
		RealtimeEndpoint string `json:"realtime_endpoint"`
	}
	require.NoError(t, json.Unmarshal(data, &created))
	status, _ = n.post(t, server.PathStart, `{"session_id":"`+created.SessionID+`"}`)
	require.Equal(t, http.StatusOK, status)
	return created.SessionID, created.RealtimeEndpoint
}

// announcement waits for the next socket announcement of the session on
// in, skipping other messages.
func announcement(t *testing.T, in *inbox, sessionID string) realtime.RelayMessage {
	t.Helper()
	for {
		r := in.next(t)
		if r.session == sessionID && r.msg.Kind == realtime.RelayReplace {
			return r.msg
		}
	}
}

// outcome reads the socket until it is closed or hears
// avatar_start_talking, skipping state updates: "replaced" for a close
// 1000 "replaced by a new connection", "open" for the speech. Anything
// else fails the test.
func (c *wsClient) outcome() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			require.ErrorAs(c.t, err, &ce)
			require.Equal(c.t, websocket.CloseNormalClosure, ce.Code)
			require.Equal(c.t, "replaced by a new connection", ce.Text)
			return "replaced"
		}
		var m realtime.ServerMessage
		require.NoError(c.t, json.Unmarshal(data, &m))
		switch m.Type {
		case realtime.TypeStateUpdated:
			continue
		case realtime.TypeStartTalking:
			return "open"
		}
		c.t.Fatalf("unexpected message %s", data)
	}
}

// TestSocketReplacedAcrossNodes runs two nodes on one Redis: the socket
// opens on a, then again on b; a closes its socket with 1000 "replaced by a
// new connection", and the session's events reach b's socket only.
func TestSocketReplacedAcrossNodes(t *testing.T) {
	clock := newFakeClock()
	rds := redistest.Start(t)
	nodes := newNodesOn(t, rds, 2, clock)
	a, b := nodes[0], nodes[1]
	watch := subscribe(t, newRelay(t, rds.Client(), Config{Prefix: "rt"}))
	id, endpoint := started(t, a)
	named := `{"session_id":"` + id + `"`

	old := dial(t, a.on(t, endpoint))
	old.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	first := announcement(t, watch, id)
	s := dial(t, b.on(t, endpoint))
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	second := announcement(t, watch, id)
	assert.NotEmpty(t, first.Socket)
	assert.NotEqual(t, first.Socket, second.Socket, "each socket its own token")
	assert.Equal(t, "replaced", old.outcome())

	// A task through a is spoken on b's socket; a stop through a closes it.
	status, data := a.post(t, server.PathTask, named+`,"text":"Hello, world"}`)
	require.Equal(t, http.StatusOK, status)
	var t1 taskAnswer
	require.NoError(t, json.Unmarshal(data, &t1))
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t1.TaskID + `","duration_ms":770}`)
	clock.started(t, 770*time.Millisecond, 2)
	clock.Advance(770 * time.Millisecond)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t1.TaskID + `","duration_ms":770,"interrupted":false}`)
	status, _ = a.post(t, server.PathStop, named+`}`)
	require.Equal(t, http.StatusOK, status)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"stop"}`)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"stop"}`)
}

// TestSimultaneousSocketsAcrossNodes opens a session's socket on two
// nodes at once, many times: each time exactly one survives and the other
// is closed as replaced.
func TestSimultaneousSocketsAcrossNodes(t *testing.T) {
	clock := newFakeClock()
	rds := redistest.Start(t)
	nodes := newNodesOn(t, rds, 2, clock)
	a := nodes[0]
	watch := subscribe(t, newRelay(t, rds.Client(), Config{Prefix: "rt"}))
	survivors := map[int]int{}
	for i := range 15 {
		id, endpoint := started(t, a)
		named := `{"session_id":"` + id + `"`
		socks := make([]*wsClient, len(nodes))
		var wg sync.WaitGroup
		for j, n := range nodes {
			wg.Go(func() {
				conn, resp, err := websocket.DefaultDialer.Dial(n.on(t, endpoint), nil)
				if !assert.NoError(t, err) {
					return
				}
				resp.Body.Close()
				socks[j] = &wsClient{t: t, conn: conn}
			})
		}
		wg.Wait()
		for _, s := range socks {
			require.NotNil(t, s)
			t.Cleanup(func() { s.conn.Close() })
		}
		// Both announcements are on the channel before the task: every
		// node applies them before it, so the survivor hears the task.
		announcement(t, watch, id)
		announcement(t, watch, id)
		status, data := a.post(t, server.PathTask, named+`,"text":"hi"}`)
		require.Equal(t, http.StatusOK, status)
		var task taskAnswer
		require.NoError(t, json.Unmarshal(data, &task))

		winner := -1
		for j, s := range socks {
			if s.outcome() == "open" {
				require.Equal(t, -1, winner, "iteration %d: both sockets survived", i)
				winner = j
			}
		}
		require.NotEqual(t, -1, winner, "iteration %d: no socket survived", i)
		survivors[winner]++
		clock.started(t, time.Duration(task.DurationMS)*time.Millisecond, 2)
		status, _ = a.post(t, server.PathStop, named+`}`)
		require.Equal(t, http.StatusOK, status)
	}
	t.Logf("survivors by node: %v", survivors)
}
