package server

import (
	"net/http"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
)

// DefaultBodyReadTimeout is how long the server waits for a request's body
// (Config.BodyReadTimeout).
const DefaultBodyReadTimeout = 10 * time.Second

// errBodyTimeout answers a body that did not arrive within
// Config.BodyReadTimeout: HTTP 408 with code 400175 ("Invalid parameter"),
// the code of every other unusable body, and the connection closes (what
// is left of the body on the wire cannot be told from a next request).
var errBodyTimeout = sserrors.ErrInvalidParameter.WithStatus(http.StatusRequestTimeout)

// setBodyDeadline bounds the reading of r's body by the body read timeout,
// counted from now (the wall clock: it is the connection's read deadline).
// A slow body then fails decode with errBodyTimeout, and a body the server
// never reads (a refused call) is drained at most until then. net/http
// lifts the deadline once the body has been read to its end. A request
// without a body (the GETs, an empty POST) gets no deadline: net/http is
// already watching its connection for the client going away, and that
// read would fail at the deadline and cancel the request's context while
// its work goes on. The realtime upgrade is not bounded (its GET has no
// body, and the hijacked connection keeps the socket's own deadlines). A
// ResponseWriter that cannot set deadlines (a recorder, a wrapper without
// Unwrap) leaves the body unbounded.
func (s *Server) setBodyDeadline(w http.ResponseWriter, r *http.Request) {
	if s.bodyTimeout <= 0 || r.URL.Path == PathRealtime || r.Body == nil || r.Body == http.NoBody {
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.bodyTimeout))
}
