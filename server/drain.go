package server

import (
	"context"
	"net/http"
)

// Drain takes this node out of a multi-node service before it stops,
// without touching any session: /readyz answers 503 from now on, a new
// realtime socket is refused (503, code 400558, Retry-After) so that the
// client opens it through another node, every socket open here is closed
// with 1012 (websocket.CloseServiceRestart) and reason
// realtime.ReasonServiceRestart, and the HTTP API goes on serving (the
// sessions' state is in the shared Store). It returns when the sockets'
// goroutines have ended, or ctx.Err() when ctx ends first (the sockets left
// are dropped by Shutdown or Close).
//
// Drain does not stop the Manager: once the node has stopped serving HTTP,
// call Manager.Leave, then Shutdown. Calling it again, or after Shutdown,
// closes nothing more and waits the same way. On a single node, whose
// sessions would not survive it, close the Manager and call Shutdown
// instead.
func (s *Server) Drain(ctx context.Context) error {
	s.health.draining.Store(true)
	return s.rt.Drain(ctx)
}

// refuseWhileDraining answers a realtime upgrade on a draining node with
// 503/400558 and a Retry-After, so that the client (or its load balancer)
// tries another node. It reports whether it answered.
func (s *Server) refuseWhileDraining(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != PathRealtime || !s.health.draining.Load() {
		return false
	}
	s.fail(w, r, request{sessionID: r.URL.Query().Get("session_id")}, errUnavailable)
	return true
}
