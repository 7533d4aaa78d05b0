package liveavatar

import (
	"context"

	"github.com/gorilla/websocket"

	"github.com/streamsession/streamsession/server/realtime"
)

// CloseDraining closes every LITE socket on Drain (code 1012,
// websocket.CloseServiceRestart).
const CloseDraining = "server draining: the session is untouched; stop it or let it idle out"

// Drain takes the node's LITE sockets away before the node stops, without
// touching any session: every socket is closed with 1012
// (websocket.CloseServiceRestart) and CloseDraining, and from now on an
// upgrade is refused with 503 before it changes anything (the session
// stays connecting, so its ws_url still opens through another node). A
// session whose socket was closed stays connected: its ws_url is spent, so
// it ends by stop, keep-alive lapsing (the idle timeout) or its duration
// limit. Drain returns when the sockets' goroutines have ended, or
// ctx.Err() when ctx ends first (Shutdown or Close then drops the sockets
// left). Calling it again, or after Shutdown, closes nothing more and
// waits the same way.
func (h *Handler) Drain(ctx context.Context) error {
	h.mu.Lock()
	h.draining = true
	socks := make([]*liteSocket, 0, len(h.bySession))
	for _, s := range h.bySession {
		socks = append(socks, s)
	}
	h.mu.Unlock()
	for _, s := range socks {
		s.conn.Close(websocket.CloseServiceRestart, CloseDraining)
	}
	return realtime.Wait(ctx, &h.wg)
}
