package server

import (
	"io"
	"net/http"
	"os"
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
// ResponseWriter that cannot set deadlines (a recorder, a middleware's
// wrapper without Unwrap) gets the bound on the body itself instead (see
// deadlineBody), so the timeout is never silently lost.
func (s *Server) setBodyDeadline(w http.ResponseWriter, r *http.Request) {
	if s.bodyTimeout <= 0 || r.URL.Path == PathRealtime || r.Body == nil || r.Body == http.NoBody {
		return
	}
	err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.bodyTimeout))
	if err != nil {
		r.Body = newDeadlineBody(r.Body, s.bodyTimeout)
	}
}

// deadlineBody bounds the reading of a body whose connection deadline
// cannot be set: a Read still waiting at the deadline returns
// os.ErrDeadlineExceeded (so decode answers errBodyTimeout), and so does
// every Read after it. The read it waited on finishes in the background,
// into a buffer of its own. It is used by one goroutine at a time, as a
// request's body is.
type deadlineBody struct {
	body    io.ReadCloser
	timer   *time.Timer
	expired chan struct{}
}

func newDeadlineBody(body io.ReadCloser, d time.Duration) *deadlineBody {
	b := &deadlineBody{body: body, expired: make(chan struct{})}
	b.timer = time.AfterFunc(d, func() { close(b.expired) })
	return b
}

type readResult struct {
	n   int
	err error
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	select {
	case <-b.expired:
		return 0, os.ErrDeadlineExceeded
	default:
	}
	buf := make([]byte, len(p))
	done := make(chan readResult, 1)
	go func() {
		n, err := b.body.Read(buf)
		done <- readResult{n, err}
	}()
	select {
	case r := <-done:
		copy(p, buf[:r.n])
		if r.err != nil {
			b.timer.Stop()
		}
		return r.n, r.err
	case <-b.expired:
		return 0, os.ErrDeadlineExceeded
	}
}

func (b *deadlineBody) Close() error {
	b.timer.Stop()
	return b.body.Close()
}
