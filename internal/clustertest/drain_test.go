package clustertest

import (
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// get answers a plain GET on a node: its status and body.
func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body), resp.Header
}

// TestDrainOnSIGTERM: a session created and started through n0, its socket
// on n0, and a silent TCP connection to n0; SIGTERM to n0. While n0 drains, its /readyz answers 503 (its
// /healthz 200), its metrics count the drain, its API still serves and a
// new socket there is refused with 503/400558; the socket is closed with
// 1012 and reopens on n1, receiving the current state first; the session
// never changes state and n0 exits 0.
func TestDrainOnSIGTERM(t *testing.T) {
	c := newCluster(t, 2, "-drain-delay", "2s")
	n0, n1 := c.nodes[0], c.nodes[1]
	const auth = "key-a0"
	d := newSession(t, n0, auth)
	require.Equal(t, 200, sessionCall(t, n0, "/v1/streaming.start", auth, d.SessionID).status)
	status, body, _ := get(t, n0.base+"/readyz")
	require.Equal(t, 200, status, body)
	ws, resp, err := websocket.DefaultDialer.Dial(d.RealtimeEndpoint, nil)
	require.NoError(t, err)
	resp.Body.Close()
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m wsMessage
	require.NoError(t, ws.ReadJSON(&m))
	require.Equal(t, wsMessage{Type: "session.state_updated", State: "connected"}, m)

	// A connection that sends nothing must not hold the node.
	silent, err := net.Dial("tcp", n0.base[len("http://"):])
	require.NoError(t, err)
	defer silent.Close()

	signalled := time.Now()
	require.NoError(t, n0.cmd.Process.Signal(syscall.SIGTERM))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	closed := time.Since(signalled)
	assert.Equal(t, websocket.CloseServiceRestart, ce.Code)
	assert.Contains(t, ce.Text, "service restart")

	// n0 is draining (for -drain-delay): not ready, alive, still serving.
	status, body, hdr := get(t, n0.base+"/readyz")
	assert.Equal(t, 503, status)
	assert.JSONEq(t, `{"code":400558,"message":"API connection error"}`, body)
	assert.Equal(t, "1", hdr.Get("Retry-After"))
	status, _, _ = get(t, n0.base+"/healthz")
	assert.Equal(t, 200, status)
	_, metrics, _ := get(t, n0.base+"/metrics")
	assert.Contains(t, metrics, "streamsession_drains_total 1\n")
	assert.Contains(t, metrics, "streamsession_draining 1\n")
	assert.Equal(t, map[string]string{d.SessionID: "connected"}, list(t, n0, auth), "n0's API still serves")
	_, resp, err = websocket.DefaultDialer.Dial(d.RealtimeEndpoint, nil)
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
	refusal, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 503, resp.StatusCode)
	assert.JSONEq(t, `{"code":400558,"message":"API connection error"}`, string(refusal))
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))

	// The client reopens its socket through n1 with the same token.
	again := listen(t, onNode(t, d.RealtimeEndpoint, n1))
	assert.Equal(t, wsMessage{Type: "session.state_updated", State: "connected"}, again.next(t))

	select {
	case <-n0.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("n0 did not exit:\n%s", n0.log)
	}
	assert.Equal(t, 0, n0.cmd.ProcessState.ExitCode(), "n0's log:\n%s", n0.log)
	assert.Less(t, time.Since(signalled), 4*time.Second, "the drain delay (2s), not the silent connection, decides the exit")
	t.Logf("socket closed with 1012 %v after SIGTERM; n0 exited after %v (drain delay 2s)",
		closed.Round(time.Millisecond), time.Since(signalled).Round(time.Millisecond))

	time.Sleep(settle) // a slot that lapsed would now show
	assert.Equal(t, map[string]string{d.SessionID: "connected"}, list(t, n1, auth), "the session is still open")
	assert.True(t, c.slotHeld(t, "a0", d.SessionID), "its slot is still held")
	logged := n0.log.String()
	assert.Contains(t, logged, "msg=draining")
	assert.Contains(t, logged, "msg=stopped")
	assert.NotContains(t, logged, "to=closing")
	task := call(n1.base, "POST", "/v1/streaming.task", auth, map[string]any{"session_id": d.SessionID, "text": "Hello"})
	require.Equal(t, 200, task.status, "%v", task)
	assert.Equal(t, "avatar_start_talking", again.next(t).Type)
	assert.Equal(t, "avatar_stop_talking", again.next(t).Type)
}
