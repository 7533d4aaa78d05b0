package realtime

import (
	"context"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServeWhileDraining: a socket handed to Serve once Drain has begun,
// while Drain waits for the sockets it closed, is closed at once with 1001
// and starts no goroutine (a goroutine counter that went back to zero must
// not be raised while Drain waits on it).
func TestServeWhileDraining(t *testing.T) {
	opened := make(chan SocketInfo, 10)
	e := newEnv(t, func(c *Config) {
		c.Hooks.SocketOpened = func(s SocketInfo) { opened <- s }
	})
	_, first := e.connect("acme")
	<-opened
	drained := make(chan error, 1)
	go func() { drained <- e.hub.Drain(context.Background()) }()
	ce := first.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseServiceRestart, ce.Code)
	first.ws.Close()

	// The upgrade of another session reached Serve meanwhile.
	id := e.create("acme")
	second := e.open("acme", id)
	ce = second.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseGoingAway, ce.Code)
	assert.Equal(t, ReasonShuttingDown, ce.Text)
	require.NoError(t, <-drained)
	select {
	case <-opened:
		t.Fatal("a socket refused by a draining Hub was reported opened")
	default:
	}
}
