package liveavatar_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits/redislimiter"
	"github.com/streamsession/streamsession/server/liveavatar"
	"github.com/streamsession/streamsession/session/redisstore"
)

// redisNodes builds n nodes on one redis-server: Redis sessions and slots,
// one secret.
func redisNodes(t *testing.T, n int) []*node {
	t.Helper()
	srv := redistest.Start(t)
	var nodes []*node
	for range n {
		lim, err := redislimiter.New(srv.Client(), redislimiter.Config{Prefix: "la"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = lim.Close() })
		store, err := redisstore.New(srv.Client(), redisstore.Config{Prefix: "la"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = store.Close() })
		nodes = append(nodes, newNode(t, nodeOptions{store: store, limiter: lim}))
	}
	return nodes
}

// TestTwoNodesOnRedis runs a LITE session across two nodes: token and
// start on one, the socket on the other, speech, a keep-alive and the stop
// through the first; and checks that plan concurrency holds across them.
func TestTwoNodesOnRedis(t *testing.T) {
	nodes := redisNodes(t, 2)
	a := client{t: t, base: nodes[0].httpServer()}
	b := client{t: t, base: nodes[1].httpServer()}

	id, token := a.token("key-acme", nil)
	st := b.start(token) // any node takes the token
	hostA := strings.TrimPrefix(a.base, "http://")
	hostB := strings.TrimPrefix(b.base, "http://")
	require.Contains(t, st.WSURL, hostB)
	wsURL := strings.Replace(st.WSURL, hostB, hostA, 1) // … and any node the ws_url

	ws, _, err := dialLite(t, wsURL)
	require.NoError(t, err)
	assert.Equal(t, "connecting", ws.next().State)
	assert.Equal(t, "connected", ws.next().State)
	assert.Equal(t, "connected", b.get("key-acme", id).State, "the other node sees it")

	ws.send(map[string]any{"type": "agent.speak", "event_id": "r1", "audio": pcm(200 * time.Millisecond)})
	ws.send(map[string]any{"type": "agent.speak_end", "event_id": "r1"})
	assert.Equal(t, event{Type: "agent.speak_started", EventID: "r1"}, strip(ws.next()))
	assert.Equal(t, event{Type: "agent.speak_ended", EventID: "r1"}, strip(ws.next()))

	b.call("POST", liveavatar.PathKeepAlive, token, nil).data(t, http.StatusOK, nil)
	var list struct {
		Count int `json:"count"`
	}
	b.call("GET", "/v1/sessions?type=active", "key-acme", nil).data(t, http.StatusOK, &list)
	assert.Equal(t, 1, list.Count)

	// Stopped through node B, heard on node A's socket.
	b.call("POST", liveavatar.PathStop, token, map[string]any{"reason": "AGENT_HANG_UP"}).data(t, http.StatusOK, nil)
	assert.Equal(t, event{Type: "session.state_updated", State: "closing", Reason: "AGENT_HANG_UP"}, strip(ws.next()))
	assert.Equal(t, event{Type: "session.state_updated", State: "closed", Reason: "AGENT_HANG_UP"}, strip(ws.next()))
	code, _ := ws.closed()
	assert.Equal(t, 1000, code)
	var hist struct {
		Count   int      `json:"count"`
		Results []listed `json:"results"`
	}
	a.call("GET", "/v1/sessions?type=historic", "key-acme", nil).data(t, http.StatusOK, &hist)
	require.Equal(t, 1, hist.Count, "the closed session, listed from the other node")
	assert.Equal(t, id, hist.Results[0].ID)
	require.NotNil(t, hist.Results[0].Mode)
	assert.Equal(t, "LITE", *hist.Results[0].Mode, "the mode, kept in Redis")

	// One slot for the one-session plan, whichever node asks.
	_, lt := a.token("key-limited", nil)
	b.call("POST", liveavatar.PathToken, "key-limited", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711"}).
		refused(t, http.StatusForbidden, 4003, "Session concurrency limit reached")
	b.call("POST", liveavatar.PathStop, lt, nil).data(t, http.StatusOK, nil)
	b.token("key-limited", nil)
}
