package realtime

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// connPair dials a loopback socket and returns the server side's Conn,
// started, and the client side. Messages the Conn receives arrive on got.
func connPair(t *testing.T, cfg ConnConfig) (c *Conn, peer *websocket.Conn, got chan string, closed *atomic.Int32) {
	t.Helper()
	serverSide := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ws, err := upgrader.Upgrade(w, r, nil); err == nil {
			serverSide <- ws
		}
	}))
	t.Cleanup(hs.Close)
	peer, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { peer.Close() })
	got = make(chan string, 16)
	closed = new(atomic.Int32)
	cfg.OnMessage = func(_ int, data []byte) { got <- string(data) }
	cfg.OnClose = func() { closed.Add(1) }
	var wg sync.WaitGroup
	c = NewConn(context.Background(), <-serverSide, cfg)
	wg.Add(2)
	c.Start(&wg)
	t.Cleanup(func() {
		c.Kill()
		wg.Wait()
	})
	return c, peer, got, closed
}

// TestConn: messages both ways, then a close after what is queued, the
// client's close answered, OnClose called once.
func TestConn(t *testing.T) {
	c, peer, got, closed := connPair(t, ConnConfig{Socket: SocketConfig{CloseGrace: time.Second}})
	require.NoError(t, peer.WriteMessage(websocket.TextMessage, []byte("hello \xff")))
	assert.Equal(t, "hello \xff", <-got, "not UTF-8, served without RequireUTF8")
	c.Send([]byte("one"))
	c.Send([]byte("two"))
	c.Close(websocket.CloseNormalClosure, "bye")
	c.Send([]byte("after the close"))
	assert.True(t, c.Closing())
	for _, want := range []string{"one", "two"} {
		_, data, err := peer.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, want, string(data))
	}
	_, _, err := peer.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
	assert.Equal(t, "bye", ce.Text)
	<-c.Context().Done()
	require.Eventually(t, func() bool { return closed.Load() == 1 }, 5*time.Second, time.Millisecond)
}

// TestConnBounds: an oversized message is 1009 with its reason, invalid
// UTF-8 under RequireUTF8 is 1007, and a flood is 1008.
func TestConnBounds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    ConnConfig
		send   func(*websocket.Conn)
		code   int
		reason string
	}{
		{"too big", ConnConfig{Socket: SocketConfig{MaxMessageBytes: 16}},
			func(p *websocket.Conn) { p.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 4096))) },
			websocket.CloseMessageTooBig, ReasonTooBig},
		{"not UTF-8", ConnConfig{RequireUTF8: true},
			func(p *websocket.Conn) { p.WriteMessage(websocket.TextMessage, []byte("\xff")) },
			websocket.CloseInvalidFramePayloadData, ReasonInvalidUTF8},
		{"too many", ConnConfig{Socket: SocketConfig{MessageRate: 0.001, MessageBurst: 2}},
			func(p *websocket.Conn) {
				for range 5 {
					p.WriteMessage(websocket.TextMessage, []byte("x"))
				}
			},
			websocket.ClosePolicyViolation, ReasonTooManyMessages},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, peer, _, closed := connPair(t, tc.cfg)
			tc.send(peer)
			peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			var err error
			for err == nil {
				_, _, err = peer.ReadMessage()
			}
			var ce *websocket.CloseError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.code, ce.Code)
			assert.Equal(t, tc.reason, ce.Text)
			peer.Close()
			require.Eventually(t, func() bool { return closed.Load() == 1 }, 5*time.Second, time.Millisecond)
		})
	}
}

// TestConnSlowReader: a full queue closes the socket with 1008 ahead of
// what is queued.
func TestConnSlowReader(t *testing.T) {
	c, peer, _, _ := connPair(t, ConnConfig{Socket: SocketConfig{SendQueue: 1}})
	big := []byte(strings.Repeat("x", 1<<20))
	for range 64 { // far more than loopback buffers hold: the writer blocks
		c.Send(big)
	}
	assert.True(t, c.Closing())
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	var err error
	for err == nil {
		_, _, err = peer.ReadMessage()
	}
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
	assert.Equal(t, ReasonSlowReader, ce.Text)
}
