package realtime

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOversizedMessageClosesWithReason: a message over MaxMessageBytes
// closes the socket with 1009 and a reason; one at the bound is served.
func TestOversizedMessageClosesWithReason(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Socket.MaxMessageBytes = 1024 })
	_, s := e.connect("acme")

	atBound := `{"type":"nothing","pad":"` + strings.Repeat("a", 1024-len(`{"type":"nothing","pad":""}`)) + `"}`
	require.Len(t, atBound, 1024)
	s.send(atBound)
	s.expect(`{"type":"error","event_type":"error","code":400175,"message":"Invalid parameter"}`)

	// Sent as several frames of one message: the bound is on the message.
	w, err := s.ws.NextWriter(websocket.TextMessage)
	require.NoError(t, err)
	for range 4 {
		_, err = w.Write([]byte(strings.Repeat(" ", 512)))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	ce := s.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
	assert.Equal(t, ReasonTooBig, ce.Text)
}

// TestPingsCountAgainstTheMessageRate: 2,000 pings sent at once are over
// the default rate (10 a second, a burst of 20): the socket closes with
// 1008, and no more pongs come back than the rate allows.
func TestPingsCountAgainstTheMessageRate(t *testing.T) {
	e := newEnv(t, nil)
	_, s := e.connect("acme")
	var pongs atomic.Int64
	s.ws.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	start := time.Now()
	for range 2000 {
		if err := s.ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
			break // the server closed the connection
		}
	}
	ce := s.closeError()
	elapsed := time.Since(start)
	require.NotNil(t, ce)
	assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
	assert.Equal(t, ReasonTooManyMessages, ce.Text)
	assert.Less(t, elapsed, 2*time.Second)
	// The burst, plus what the rate refills while the test runs.
	assert.LessOrEqual(t, pongs.Load(), int64(20+10*elapsed.Seconds()+1))
	assert.Positive(t, pongs.Load())
}

// TestClientCloseIsAnsweredWithAReason: the server answers a client's
// close frame with its code and a reason.
func TestClientCloseIsAnsweredWithAReason(t *testing.T) {
	e := newEnv(t, nil)
	_, s := e.connect("acme")
	require.NoError(t, s.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second)))
	ce := s.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
	assert.Equal(t, ReasonClientClosed, ce.Text)
}
