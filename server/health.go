package server

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
)

// Paths of the probes served by [Server.Health].
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
)

// HeaderNotReady is the header a 503 from /readyz carries to say why the
// node cannot take work, beside the frozen 400558 body: "draining" (Drain
// began, or the server shut down), "backend_unavailable" (Config.Ready
// failed or did not answer), or the reason of an error in Ready's chain
// that has a ReadyReason method (for example "secret_changed").
const HeaderNotReady = "X-Streamsession-Not-Ready"

// Reasons /readyz gives in HeaderNotReady.
const (
	NotReadyDraining           = "draining"
	NotReadyBackendUnavailable = "backend_unavailable"
)

// DefaultReadyTimeout bounds Config.Ready when Config.ReadyTimeout is zero.
const DefaultReadyTimeout = time.Second

// errNotReady answers /readyz while the node cannot take work: its backend
// did not answer (Config.Ready), or it is draining or shut down.
var errNotReady = sserrors.ErrBackendUnavailable

// health is the readiness state of a Server.
type health struct {
	ready        func(context.Context) error
	readyTimeout time.Duration
	draining     atomic.Bool
}

func newHealth(cfg Config) *health {
	h := &health{ready: cfg.Ready, readyTimeout: cfg.ReadyTimeout}
	if h.readyTimeout <= 0 {
		h.readyTimeout = DefaultReadyTimeout
	}
	return h
}

// Health returns the handler of the probes a load balancer or Kubernetes
// sends; mount it at the root of the node's mux, on PathHealthz and
// PathReadyz. Both answer GET and HEAD (any other method: 405 with an Allow
// header and code 40051):
//
//   - /healthz (liveness): 200 with the success envelope while the process
//     serves HTTP, draining or not.
//   - /readyz (readiness): 200 when the node can take work; 503 with the
//     error envelope {"code":400558,"message":"API connection error"} and a
//     Retry-After when it cannot: Config.Ready failed or did not answer
//     within Config.ReadyTimeout (its backend, Redis, is unreachable), or
//     the node is draining ([Server.Drain]) or shut down. The reason is in
//     the HeaderNotReady header (the body stays the frozen envelope).
//
// Probe answers are not reported to Hooks.Refused (a load balancer probes
// every few hundred milliseconds). Any other path is a JSON 404.
func (s *Server) Health() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path != PathHealthz && r.URL.Path != PathReadyz {
			writeError(w, errNotFound)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, errMethodNotAllowed)
			return
		}
		if r.URL.Path == PathReadyz {
			if err := s.Ready(r.Context()); err != nil {
				w.Header().Set(HeaderNotReady, notReadyReason(err))
				writeError(w, err)
				return
			}
		}
		writeData(w, nil)
	})
}

// Ready reports whether the node can take work, as /readyz answers: nil, or
// an error with code 400558 and HTTP status 503 when the node is draining
// or shut down, or when Config.Ready fails or does not answer within
// Config.ReadyTimeout (the error then wraps Ready's).
func (s *Server) Ready(ctx context.Context) error {
	if s.health.draining.Load() || s.rt.Closed() {
		return errDraining
	}
	if s.health.ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.health.readyTimeout)
	defer cancel()
	if err := s.health.ready(ctx); err != nil {
		return errNotReady.WithCause(err)
	}
	return nil
}

// Draining reports whether [Server.Drain] has begun.
func (s *Server) Draining() bool { return s.health.draining.Load() }

// notReadyReason names why Ready failed, for HeaderNotReady: the reason of
// the first error in err's chain with a ReadyReason method, else draining
// or backend_unavailable. A reason is a short token, never a secret or an
// id.
func notReadyReason(err error) string {
	var r interface{ ReadyReason() string }
	if errors.As(err, &r) {
		if v := r.ReadyReason(); v != "" {
			return v
		}
	}
	return NotReadyBackendUnavailable
}

// readyReason is a cause of errNotReady that names itself.
type readyReason string

func (r readyReason) Error() string       { return "server: not ready: " + string(r) }
func (r readyReason) ReadyReason() string { return string(r) }

// errDraining answers /readyz while the node drains or is shut down.
var errDraining = errNotReady.WithCause(readyReason(NotReadyDraining))
