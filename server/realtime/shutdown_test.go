package realtime

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"
)

// TestCloseDropsASocketStuckInAWrite: a client that reads nothing while the
// server writes more than the connection buffers holds its writer inside a
// write (for up to WriteTimeout); Close still drops it at once.
func TestCloseDropsASocketStuckInAWrite(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Socket.WriteTimeout = time.Minute
		c.Socket.SendQueue = 256
	})
	id, _ := e.connect("acme") // the client reads nothing from now on
	c := e.hub.get(id)
	require.NotNil(t, c)
	big := bytes.Repeat([]byte("x"), 1<<20)
	for range 64 { // far more than loopback buffers hold
		e.hub.send(id, big)
	}
	// The writer is stuck once the queue stops draining.
	last := -1
	require.Eventually(t, func() bool {
		n := len(c.conn.send)
		stuck := n == last && n > 0
		last = n
		return stuck
	}, 10*time.Second, 100*time.Millisecond)

	done := make(chan struct{})
	go func() {
		e.hub.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a write stuck on a client that does not read")
	}
}

// TestCloseFrameOfAFullQueue: a close decided while the send queue is full
// (a replaced socket, a drain) still reaches the client, ahead of what was
// queued: a socket dropped without its close frame looks like a network
// failure, and a client reconnects after one (replacing the newer socket).
func TestCloseFrameOfAFullQueue(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Socket.SendQueue = 4 })
	cl, s := e.rawClientStopped("acme", "s1")
	for range 3 { // with the first state, the queue is full
		cl.sendData([]byte(`{}`))
	}
	require.Empty(t, cl.conn.urgent)
	cl.closeWith(websocket.CloseNormalClosure, ReasonReplaced)
	e.hub.wg.Add(2)
	cl.conn.Start(&e.hub.wg)
	ce := s.closeError()
	require.NotNil(t, ce, "a close frame, not a drop")
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
	assert.Equal(t, ReasonReplaced, ce.Text)
	<-cl.ctx.Done()
}

// failingGet is a Store whose Get fails while fail is set.
type failingGet struct {
	session.Store
	fail atomic.Bool
}

func (f *failingGet) Get(ctx context.Context, account, id string) (session.Record, error) {
	if f.fail.Load() {
		return session.Record{}, sserrors.ErrBackendUnavailable
	}
	return f.Store.Get(ctx, account, id)
}

// TestSocketWithoutAState: a socket whose session's state cannot be read
// sends nothing before it (a speech event must not come first): it is
// closed with 1011 and the client reopens it.
func TestSocketWithoutAState(t *testing.T) {
	store := &failingGet{Store: session.NewMemoryStore(session.MemoryStoreConfig{})}
	lim := limits.NewMemory(limits.MemoryConfig{Capacity: 10})
	t.Cleanup(func() { lim.Close() })
	mgr, err := session.NewManager(session.Config{Limiter: lim, Store: store,
		Avatars: session.Avatars{{ID: "a", Public: true, Active: true, Default: true}}})
	require.NoError(t, err)
	t.Cleanup(func() { mgr.Close(context.Background()) })
	e := newEnv(t, func(c *Config) { c.Manager = mgr })
	e.mgr = mgr
	id, _ := e.connect("acme")
	store.fail.Store(true)
	s := e.open("acme", id)
	e.hub.send(id, []byte(`{"type":"avatar_start_talking"}`))
	ce := s.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseInternalServerErr, ce.Code)
	assert.Equal(t, ReasonStateUnavailable, ce.Text)
}
