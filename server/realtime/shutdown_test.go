package realtime

import (
	"bytes"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCloseDropsASocketStuckInAWrite: a client that reads nothing while the
// server writes more than the connection buffers holds its writer inside a
// write (for up to WriteTimeout); Close still drops it at once.
func TestCloseDropsASocketStuckInAWrite(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Socket.WriteTimeout = time.Minute
		c.Socket.SendQueue = 256
	})
	id, _ := e.connect("acme") // the client reads nothing from now on
	c := e.hub.get(id)
	require.NotNil(t, c)
	big := bytes.Repeat([]byte("x"), 1<<20)
	for range 64 { // far more than loopback buffers hold
		e.hub.send(id, big)
	}
	// The writer is stuck once the queue stops draining.
	last := -1
	require.Eventually(t, func() bool {
		n := len(c.send)
		stuck := n == last && n > 0
		last = n
		return stuck
	}, 10*time.Second, 100*time.Millisecond)

	done := make(chan struct{})
	go func() {
		e.hub.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a write stuck on a client that does not read")
	}
}

// TestCloseFrameOfAFullQueue: a close decided while the send queue is full
// (a replaced socket, a drain) still reaches the client, ahead of what was
// queued: a socket dropped without its close frame looks like a network
// failure, and a client reconnects after one (replacing the newer socket).
func TestCloseFrameOfAFullQueue(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Socket.SendQueue = 4 })
	cl, s := e.rawClientStopped("acme", "s1")
	for range 3 { // with the first state, the queue is full
		cl.sendData([]byte(`{}`))
	}
	require.Empty(t, cl.urgent)
	cl.closeWith(websocket.CloseNormalClosure, ReasonReplaced)
	e.hub.wg.Add(2)
	go cl.writeLoop()
	go cl.readLoop()
	ce := s.closeError()
	require.NotNil(t, ce, "a close frame, not a drop")
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
	assert.Equal(t, ReasonReplaced, ce.Text)
	<-cl.ctx.Done()
}
