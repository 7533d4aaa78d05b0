// Package wstest is the test client of the realtime socket: dial it, read
// and compare its messages with a guard deadline, send, and read to its
// close frame. The tests of server, server/realtime, server/redisrelay and
// service share it.
package wstest

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
)

// Timeout guards every read and the handshake: a test that waits for a
// message that never comes fails after it instead of hanging.
const Timeout = 5 * time.Second

// Conn is a test client's realtime socket. Its methods fail the test on
// error; like a *websocket.Conn, it supports one reader and one writer at
// a time.
type Conn struct {
	T  testing.TB
	WS *websocket.Conn
}

// Dial opens the socket at url (ws:// or wss://) with hdr, and closes it
// when t ends. It fails the test unless the upgrade succeeds.
func Dial(t testing.TB, url string, hdr ...http.Header) *Conn {
	t.Helper()
	var h http.Header
	if len(hdr) > 0 {
		h = hdr[0]
	}
	ws, resp, err := DialRaw(url, h)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	t.Cleanup(func() { ws.Close() })
	return &Conn{T: t, WS: ws}
}

// DialRaw opens the socket at url with hdr and returns what the dialer
// returned, for tests of a refused upgrade.
func DialRaw(url string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: Timeout}
	return d.Dial(url, hdr)
}

// Read returns the next text message of ws, failing t after Timeout.
func Read(t testing.TB, ws *websocket.Conn) string {
	t.Helper()
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(Timeout)))
	typ, data, err := ws.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, websocket.TextMessage, typ)
	return string(data)
}

// Expect reads the next message of ws and compares it, as JSON, with want.
func Expect(t testing.TB, ws *websocket.Conn, want string) {
	t.Helper()
	require.JSONEq(t, want, Read(t, ws))
}

// Send writes msg to ws as a text message.
func Send(t testing.TB, ws *websocket.Conn, msg string) {
	t.Helper()
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte(msg)))
}

// CloseError reads ws until the connection ends and returns its close
// frame (nil when it ended without one), failing t after Timeout.
func CloseError(t testing.TB, ws *websocket.Conn) *websocket.CloseError {
	t.Helper()
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(Timeout)))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce
		}
		return nil
	}
}

// Read returns the next text message.
func (c *Conn) Read() string { c.T.Helper(); return Read(c.T, c.WS) }

// Expect reads the next message and compares it, as JSON, with want.
func (c *Conn) Expect(want string) { c.T.Helper(); Expect(c.T, c.WS, want) }

// Send writes msg as a text message.
func (c *Conn) Send(msg string) { c.T.Helper(); Send(c.T, c.WS, msg) }

// CloseError reads until the connection ends and returns its close frame
// (nil when it ended without one).
func (c *Conn) CloseError() *websocket.CloseError { c.T.Helper(); return CloseError(c.T, c.WS) }

// State reads messages until a session.state_updated and returns its
// state ("connected", "closing", "closed").
func (c *Conn) State() string {
	c.T.Helper()
	for {
		var m struct {
			Type  string `json:"type"`
			State string `json:"state"`
		}
		require.NoError(c.T, json.Unmarshal([]byte(c.Read()), &m))
		if m.Type == "session.state_updated" {
			return m.State
		}
	}
}

// OnHost returns endpoint (a realtime_endpoint) with base's host, so that a
// test dials a session's socket through another node.
func OnHost(t testing.TB, endpoint, base string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	require.NoError(t, err)
	b, err := url.Parse(base)
	require.NoError(t, err)
	u.Host = b.Host
	return u.String()
}
