package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The slow-body tests run over real loopback TCP against a 1 s deadline.
const (
	testBodyTimeout = time.Second
	slowByteEvery   = 200 * time.Millisecond
	// guard bounds every wait of these tests; an answer must come well
	// before it.
	guard = 10 * time.Second
)

// slowClient is one raw HTTP/1.1 connection to the test server.
type slowClient struct {
	t    *testing.T
	conn net.Conn
	rd   *bufio.Reader
}

func (e *env) rawConn(t *testing.T) *slowClient {
	t.Helper()
	conn, err := net.Dial("tcp", e.http.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(guard)))
	return &slowClient{t: t, conn: conn, rd: bufio.NewReader(conn)}
}

// send writes a request's head at once, then its body one byte every
// `every` in the background, until the body is sent or the connection
// refuses a write. It returns a channel closed when the writer stops.
func (c *slowClient) send(head []string, body string, every time.Duration) <-chan struct{} {
	c.t.Helper()
	_, err := io.WriteString(c.conn, strings.Join(head, "\r\n")+"\r\n\r\n")
	require.NoError(c.t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range len(body) {
			if i > 0 && every > 0 {
				time.Sleep(every)
			}
			if _, err := c.conn.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}()
	return done
}

// answer reads one response (nil when the server closed the connection
// without one) with its body.
func (c *slowClient) answer() (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.rd, nil)
	if err != nil {
		require.True(c.t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err), "reading the answer: %v", err)
		return nil, ""
	}
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp, string(data)
}

// closed reports whether the server closed the connection (EOF or reset
// before the guard).
func (c *slowClient) closed() bool {
	_, err := c.rd.ReadByte()
	return errors.Is(err, io.EOF) || isReset(err)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !errors.Is(err, os.ErrDeadlineExceeded)
}

func head(path string, hdr ...string) []string {
	return append([]string{"POST " + path + " HTTP/1.1", "Host: api.test", "Content-Type: application/json"}, hdr...)
}

// TestSlowBodyIsCut: a body sent at one byte every 200 ms, with a 1 s
// deadline, is answered 408/400175 and its connection closed within about
// the deadline, with or without an API key; nothing is created.
func TestSlowBodyIsCut(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BodyReadTimeout = testBodyTimeout })
	body := `{"avatar_id":"Wayne_20240711","quality":"high"}` // 9.4 s at this pace
	cl := fmt.Sprintf("Content-Length: %d", len(body))
	tests := []struct {
		name string
		head []string
		// want is the status answered before the connection closes.
		want     int
		wantBody string
	}{
		{"with an API key", head(PathNew, cl, "X-Api-Key: key-acme"), http.StatusRequestTimeout, bodyInvalid},
		{"chunked, with an API key", head(PathNew, "Transfer-Encoding: chunked", "X-Api-Key: key-acme"), http.StatusRequestTimeout, bodyInvalid},
		// Refused before its body is read: the server drains the body
		// until the deadline, then answers and closes.
		{"without an API key", head(PathNew, cl), http.StatusUnauthorized, bodyUnauthorized},
		{"an unknown path", head("/v1/streaming.nope", cl), http.StatusNotFound, bodyNoResource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.rawConn(t)
			payload := body
			if strings.Contains(strings.Join(tt.head, "\n"), "chunked") {
				payload = fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
			}
			start := time.Now()
			writer := c.send(tt.head, payload, slowByteEvery)
			resp, got := c.answer()
			require.NotNil(t, resp, "the server answers before it closes the connection")
			assert.Equal(t, tt.want, resp.StatusCode)
			assert.Equal(t, tt.wantBody, got)
			assert.True(t, resp.Close, "the answer closes the connection")
			assert.True(t, c.closed(), "the server closed the connection")
			elapsed := time.Since(start)
			assert.GreaterOrEqual(t, elapsed, testBodyTimeout-100*time.Millisecond)
			assert.Less(t, elapsed, testBodyTimeout+2*time.Second, "cut within about the deadline")
			c.conn.Close()
			<-writer
		})
	}
	infos, err := e.mgr.List(context.Background(), "acme")
	require.NoError(t, err)
	assert.Empty(t, infos, "nothing was created")
	assert.Equal(t, 0, e.lim.heldCount())
}

// TestBodyInTimeIsServed: a body that arrives slowly but within the
// deadline is served, and the deadline of one request does not reach the
// next one on the same connection.
func TestBodyInTimeIsServed(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BodyReadTimeout = testBodyTimeout })
	c := e.rawConn(t)
	body := "{        }" // 10 bytes in 450 ms
	<-c.send(head(PathNew, "Content-Length: 10", "X-Api-Key: key-acme"), body, 50*time.Millisecond)
	resp, got := c.answer()
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode, got)
	assert.False(t, resp.Close)

	// Idle on the connection for longer than the deadline, then a second
	// request: the deadline was the first request's only.
	time.Sleep(testBodyTimeout + 200*time.Millisecond)
	<-c.send(head(PathNew, "Content-Length: 2", "X-Api-Key: key-acme"), "{}", 0)
	resp, got = c.answer()
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode, got)

	infos, err := e.mgr.List(context.Background(), "acme")
	require.NoError(t, err)
	assert.Len(t, infos, 2)
}

// slowRates is a RateLimiter that takes `wait` of real time to allow a
// request, and fails with its context's error when that context ends first.
type slowRates struct{ wait time.Duration }

func (s slowRates) Allow(ctx context.Context, _ string, _ RateLimit) (RateDecision, error) {
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return RateDecision{}, ctx.Err()
	case <-t.C:
		return RateDecision{Allowed: true}, nil
	}
}

// TestBodyDeadlineDoesNotCancelWork: the body read deadline bounds the body
// only. A request without a body whose work outlasts the deadline keeps its
// context and is served; before, net/http's watch of the idle connection
// failed at the deadline and cancelled it (here a 503 from a limiter that
// saw its context end).
func TestBodyDeadlineDoesNotCancelWork(t *testing.T) {
	const deadline = 200 * time.Millisecond
	e := rateEnv(t, RateLimit{PerSecond: 100}, func(c *Config) {
		c.BodyReadTimeout = deadline
		c.RateLimiter = slowRates{3 * deadline}
	})
	r := e.do(http.MethodGet, PathList, key("key-acme"), nil)
	assert.Equal(t, http.StatusOK, r.status, "a GET: %s", r.body)
	r = e.do(http.MethodPost, PathNew, key("key-acme"), nil)
	assert.Equal(t, http.StatusOK, r.status, "an empty POST: %s", r.body)
	assert.Equal(t, 1, e.sessions("acme"))
}
