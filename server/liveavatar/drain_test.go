package liveavatar_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server/liveavatar"
)

// TestDrain checks that Drain closes the LITE sockets with 1012 and its
// reason, leaves every session as it was, and refuses new sockets before
// they spend their ws_url.
func TestDrain(t *testing.T) {
	// The client reads the close frame after Drain returns: Drain waits
	// the close grace for its answer.
	n := newNode(t, nodeOptions{socket: func(c *liveavatar.Config) { c.Socket.CloseGrace = 50 * time.Millisecond }})
	c := client{t: t, base: n.httpServer()}
	id, token, ws, _ := connected(t, c)
	otherID, otherToken := c.token("key-acme", nil)
	st := c.start(otherToken)

	require.NoError(t, n.la.Drain(t.Context()))
	code, reason := ws.closed()
	assert.Equal(t, websocket.CloseServiceRestart, code)
	assert.Equal(t, liveavatar.CloseDraining, reason)
	assert.Equal(t, "connected", c.get("key-acme", id).State, "the session is untouched")
	c.call("POST", liveavatar.PathKeepAlive, token, nil).data(t, http.StatusOK, nil)

	_, resp, err := dialLite(t, st.WSURL)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "connecting", c.get("key-acme", otherID).State, "the ws_url is not spent")

	require.NoError(t, n.la.Drain(t.Context()), "again: nothing more to close")
	require.NoError(t, n.la.Shutdown(t.Context()))
}
