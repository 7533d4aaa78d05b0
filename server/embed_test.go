package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/wstest"
	"github.com/streamsession/streamsession/session"
)

type traceKey struct{}

// TestRefusedCarriesRequestContext: the Refused hook receives the refused
// request's context, with what an embedder's middleware put in it.
func TestRefusedCarriesRequestContext(t *testing.T) {
	e := newEnv(t, nil)
	withTrace := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), traceKey{}, "trace-1")))
		})
	}
	req := httptest.NewRequest(http.MethodPost, PathNew, strings.NewReader(`{}`))
	req.Header.Set("X-Api-Key", "no-such-key")
	rec := httptest.NewRecorder()
	withTrace(e.srv).ServeHTTP(rec, req)
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	select {
	case ref := <-e.refused:
		require.NotNil(t, ref.Context)
		assert.Equal(t, "trace-1", ref.Context.Value(traceKey{}))
	default:
		t.Fatal("the Refused hook was not called")
	}
}

// TestWithAccount: an account an embedder's middleware resolved reaches the
// server through the request's context, with no API key; without it, or
// with an account without a name, the same request is refused.
func TestWithAccount(t *testing.T) {
	e := newEnv(t, nil)
	acct := testAccts["key-acme"]
	resolved := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(WithAccount(r.Context(), acct)))
		})
	}
	call := func(h http.Handler) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, PathNew, strings.NewReader(`{}`))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := call(resolved(e.srv))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	list, err := e.mgr.List(context.Background(), acct.Name)
	require.NoError(t, err)
	assert.Len(t, list, 1, "the session is the resolved account's")

	assert.Equal(t, http.StatusUnauthorized, call(e.srv).Code, "no account, no key")
	empty := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(WithAccount(r.Context(), session.Account{Plan: acct.Plan})))
		})
	}
	assert.Equal(t, http.StatusUnauthorized, call(empty(e.srv)).Code, "an account without a name is ignored")
}

// handshake is a valid WebSocket opening handshake for url's path and
// query.
func handshake(t *testing.T, endpoint string) *http.Request {
	t.Helper()
	u, err := url.Parse(endpoint)
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodGet, u.RequestURI(), nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	return req
}

// unwrapper is a middleware's ResponseWriter: it hides the methods of the
// one it wraps but offers it through Unwrap.
type unwrapper struct{ w http.ResponseWriter }

func (u *unwrapper) Header() http.Header         { return u.w.Header() }
func (u *unwrapper) Write(b []byte) (int, error) { return u.w.Write(b) }
func (u *unwrapper) WriteHeader(code int)        { u.w.WriteHeader(code) }
func (u *unwrapper) Unwrap() http.ResponseWriter { return u.w }

// TestFailedUpgradeLeavesConnecting: when the socket's upgrade fails (here
// a ResponseWriter that cannot hijack), the upgrade answers an error and the
// session stays connecting: it is not connected without a socket.
func TestFailedUpgradeLeavesConnecting(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connecting("key-acme")
	rec := httptest.NewRecorder() // no Hijack
	e.srv.ServeHTTP(rec, handshake(t, c.RealtimeEndpoint))
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	info, err := e.mgr.Get(context.Background(), "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connecting, info.State, "no socket, not connected")
}

// TestUpgradeBehindMiddleware: behind a middleware whose ResponseWriter
// hides http.Hijacker but has Unwrap, the socket opens and the session
// connects.
func TestUpgradeBehindMiddleware(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connecting("key-acme")
	wrapped := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.srv.ServeHTTP(&unwrapper{w: w}, r)
	}))
	defer wrapped.Close()
	u, err := url.Parse(c.RealtimeEndpoint)
	require.NoError(t, err)
	u.Host = strings.TrimPrefix(wrapped.URL, "http://")
	ws := wstest.Dial(t, u.String())
	ws.Expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	info, err := e.mgr.Get(context.Background(), "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connected, info.State)
}

// hider is a middleware's ResponseWriter without Unwrap: it hides the
// connection's deadlines.
type hider struct{ w http.ResponseWriter }

func (h *hider) Header() http.Header         { return h.w.Header() }
func (h *hider) Write(b []byte) (int, error) { return h.w.Write(b) }
func (h *hider) WriteHeader(code int)        { h.w.WriteHeader(code) }

// TestBodyTimeoutBehindWrapperWithoutUnwrap: behind a wrapper that hides the
// connection's read deadline, a body that stops arriving still answers
// 408/400175 at the body read timeout instead of holding the request.
func TestBodyTimeoutBehindWrapperWithoutUnwrap(t *testing.T) {
	const timeout = 200 * time.Millisecond
	e := newEnv(t, func(c *Config) { c.BodyReadTimeout = timeout })
	pr, pw := io.Pipe()
	defer pw.Close() // ends the read left waiting in the background
	req := httptest.NewRequest(http.MethodPost, PathNew, pr)
	req.Header.Set("X-Api-Key", "key-acme")
	rec := httptest.NewRecorder()
	start := time.Now()
	go func() { _, _ = pw.Write([]byte(`{"avatar_id":`)) }() // then nothing more
	served := make(chan struct{})
	go func() {
		defer close(served)
		e.srv.ServeHTTP(&hider{w: rec}, req)
	}()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		pw.Close() // let the handler go, then fail
		<-served
		t.Fatal("the request was held past its body read timeout")
	}
	elapsed := time.Since(start)
	assert.Equal(t, http.StatusRequestTimeout, rec.Code)
	assert.JSONEq(t, `{"code":400175,"message":"Invalid parameter"}`, rec.Body.String())
	assert.GreaterOrEqual(t, elapsed, timeout-20*time.Millisecond)
	assert.Less(t, elapsed, timeout+2*time.Second)
	list, err := e.mgr.List(context.Background(), "acme")
	require.NoError(t, err)
	assert.Empty(t, list, "nothing created")
}
