package liveavatar_test

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"

	"github.com/streamsession/streamsession/server/liveavatar"
)

// TestSocketPingRate checks that ping frames count against the socket's
// message rate: a client pinging past the burst is closed with 1008, as
// one sending messages is, instead of being answered a pong for each.
func TestSocketPingRate(t *testing.T) {
	n := newNode(t, nodeOptions{socket: func(c *liveavatar.Config) {
		c.Socket.MessageRate = 1
		c.Socket.MessageBurst = 3
	}})
	c := client{t: t, base: n.httpServer()}
	_, _, ws, _ := connected(t, c)
	pongs := 0
	ws.ws.SetPongHandler(func(string) error { pongs++; return nil })
	for range 10 {
		if ws.ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)) != nil {
			break
		}
	}
	code, reason := ws.closed()
	assert.Equal(t, websocket.ClosePolicyViolation, code)
	assert.Equal(t, liveavatar.CloseTooManyMessages, reason)
	assert.LessOrEqual(t, pongs, 3, "pongs answered within the burst only")
}
