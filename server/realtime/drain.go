package realtime

import (
	"context"

	"github.com/gorilla/websocket"
)

// ReasonServiceRestart closes every socket on Drain (code 1012,
// websocket.CloseServiceRestart): the client should open it again, through
// any node of the service, with the same session_token.
const ReasonServiceRestart = "service restart: reconnect"

// Drain takes the node's sockets away before the node stops, without
// touching any session: every socket registered is closed with 1012
// (websocket.CloseServiceRestart) and ReasonServiceRestart, and from now on
// a socket handed to Serve is closed at once (with 1001, like one handed to
// a closed Hub); the subscriptions and the simulated speech go on until
// Shutdown. Drain returns when the sockets' goroutines have ended, or
// ctx.Err() when ctx ends first (Shutdown or Close then drops the sockets
// left). Calling it again, or after Shutdown, closes nothing more and waits
// the same way.
func (h *Hub) Drain(ctx context.Context) error {
	h.mu.Lock()
	h.draining = true
	clients := make([]*client, 0, len(h.bySession))
	for _, c := range h.bySession {
		clients = append(clients, c)
	}
	h.mu.Unlock()
	for _, c := range clients {
		c.closeWith(websocket.CloseServiceRestart, ReasonServiceRestart)
	}
	return h.waitSockets(ctx)
}
