package client_test

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/client"
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
