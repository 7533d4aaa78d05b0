package client_test

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/client"
	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/server"
)

// heldConn lets the first Write through (the upgrade's 101) and holds every
// later one until release.
type heldConn struct {
	net.Conn
	once    sync.Once
	release <-chan struct{}
}

func (c *heldConn) Write(p []byte) (int, error) {
	passed := false
	c.once.Do(func() { passed = true })
	if !passed {
		<-c.release
	}
	return c.Conn.Write(p)
}

type holdWriter struct {
	http.ResponseWriter
	release <-chan struct{}
}

func (w holdWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	held := &heldConn{Conn: conn, release: w.release}
	rw.Writer.Reset(held)
	return held, rw, nil
}

// TestConnectedOnceConnectReturns: a socket that opens means the session is
// connected (the server joins it before the 101), so a task sent right after
// Connect returns is not refused by the guard, whether or not the socket's
// first event has been read yet.
func TestConnectedOnceConnectReturns(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	release := make(chan struct{})
	b.intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != server.PathRealtime {
			return false
		}
		b.srv.ServeHTTP(holdWriter{w, release}, r)
		return true
	})
	c, _ := newClient(t, b, "key-acme")
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	events, err := s.Connect(ctx)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connected, s.State())
	_, err = s.Task(ctx, "Hello")
	assert.NoError(t, err)
	close(release)
	assert.Equal(t, client.StateEvent{State: fsm.Connected}, next(t, events), "the current state first")
	require.NoError(t, s.Stop(ctx))
	drain(t, events)
}

// TestTaskIsNotRetriedAfterA5xx: a 5xx answer to a task may come after the
// task was spoken (a relay publication that timed out yet reached Redis),
// so the task is not sent again; a 429, decided before any work, is.
func TestTaskIsNotRetriedAfterA5xx(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first *sserrors.Error
		sent  int
	}{
		{"503", sserrors.ErrBackendUnavailable, 1},
		{"500", sserrors.ErrInternalServerError, 1},
		{"429", sserrors.ErrMovioAPIExceedRateLimit.WithRetryAfter(time.Second), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tasks := 0
				s := &scripted{answer: func(_ int, w http.ResponseWriter, r *http.Request) error {
					switch r.URL.Path {
					case "/v1/streaming.new":
						created(w)
					case "/v1/streaming.task":
						if tasks++; tasks == 1 {
							sserrors.Write(w, tc.first)
							return nil
						}
						sserrors.WriteData(w, map[string]any{"task_id": "t1", "duration_ms": 1500})
					}
					return nil
				}}
				sess, err := s.client(t, client.WithoutGuard()).NewSession(t.Context(), client.NewSessionRequest{})
				require.NoError(t, err)
				_, err = sess.Task(t.Context(), "hi")
				if tc.sent == 1 {
					assert.ErrorIs(t, err, tc.first)
				} else {
					assert.NoError(t, err)
				}
				assert.Equal(t, tc.sent, tasks)
			})
		})
	}
}

// TestReconnectRefusedWithA429GoesOn: a reconnection refused for the moment
// (429: the account's request rate, or the service full) is tried again, as
// a drained node's sockets all reopening at once may well meet one; only a
// final refusal ends the stream.
func TestReconnectRefusedWithA429GoesOn(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	var h hijacked
	var upgrades atomic.Int32
	b.intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != server.PathRealtime {
			return false
		}
		if upgrades.Add(1) == 2 { // the first reconnection
			sserrors.Write(w, sserrors.ErrMovioAPIExceedRateLimit.WithRetryAfter(time.Second))
			return true
		}
		b.srv.ServeHTTP(hijackWriter{w, &h}, r)
		return true
	})
	s, events := connectedSession(t, b, client.WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
	h.cut()
	dis, ok := next(t, events).(client.DisconnectedEvent)
	require.True(t, ok)
	assert.True(t, dis.Reconnecting)
	assert.Equal(t, client.StateEvent{State: fsm.Connected}, next(t, events), "reopened after the 429")
	assert.Equal(t, int32(3), upgrades.Load())
	require.NoError(t, s.Stop(ctx))
	drain(t, events)
}

// TestCloseDuringConnect: a Close made while Connect dials waits for it and
// closes the socket it opened, so no socket or goroutine outlives Close.
func TestCloseDuringConnect(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	entered, release := make(chan struct{}), make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the backend closes: its handler waits on release
	var once sync.Once
	b.intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == server.PathRealtime {
			once.Do(func() { close(entered) })
			<-release
		}
		return false
	})
	c, _ := newClient(t, b, "key-acme")
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))

	connected := make(chan (<-chan client.Event), 1)
	go func() {
		events, err := s.Connect(ctx)
		assert.NoError(t, err)
		connected <- events
	}()
	<-entered
	closed := make(chan struct{})
	go func() {
		assert.NoError(t, s.Close())
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while Connect was still dialling")
	case <-time.After(50 * time.Millisecond):
	}
	releaseOnce()
	events := <-connected
	<-closed
	drain(t, events) // the channel closes: Close ended the stream Connect opened
	require.NoError(t, s.Stop(ctx))
}
