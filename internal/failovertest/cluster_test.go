package failovertest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/server"
)

// TestClusterEndToEnd runs two nodes on a redis+cluster:// URL of a real
// three-master Redis Cluster: a session created through one node is
// started and given a task through the other, its socket on the first
// hears the task and the stop, and the plan's concurrency is then taken
// exactly.
func TestClusterEndToEnd(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	url := "redis+cluster://" + strings.Join(cl.Addrs(), ",")
	secret := newSecret(t)
	a := newNode(t, url, secret, nodeOptions{})
	b := newNode(t, url, secret, nodeOptions{})
	nodes := []*node{a, b}

	c := a.newSession(t, "key-acme")
	require.Equal(t, http.StatusOK, b.call(server.PathStart, "key-acme", named(c.SessionID)).status)
	sock := dial(t, a.on(t, c.RealtimeEndpoint))
	require.Equal(t, "connected", sock.next(t)["state"])

	ans := b.call(server.PathTask, "key-acme", `{"session_id":"`+c.SessionID+`","text":"Hello"}`)
	require.Equal(t, http.StatusOK, ans.status, "%s", ans.data)
	var task struct {
		TaskID string `json:"task_id"`
	}
	require.NoError(t, json.Unmarshal(ans.data, &task))
	m := sock.next(t)
	assert.Equal(t, "avatar_start_talking", m["type"], "%v", m)
	assert.Equal(t, task.TaskID, m["task_id"])
	m = sock.next(t)
	assert.Equal(t, "avatar_stop_talking", m["type"], "%v", m)
	assert.Equal(t, task.TaskID, m["task_id"])

	require.Equal(t, http.StatusOK, b.call(server.PathStop, "key-acme", named(c.SessionID)).status)
	m = sock.next(t)
	assert.Equal(t, "closing", m["state"], "%v", m)
	assert.Equal(t, "stop", m["reason"], "%v", m)
	m = sock.next(t)
	assert.Equal(t, "closed", m["state"], "%v", m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := a.mgr.Get(ctx, "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Closed, info.State)

	assertExact(t, nodes, "key-acme", acmeMax)
}
