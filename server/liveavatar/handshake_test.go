package liveavatar_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSocketHalfHandshake sends upgrade requests the WebSocket upgrader
// refuses (Connection and Upgrade headers, but no valid key or version):
// each is answered 400 in the envelope and leaves the session connecting,
// so that the ws_url still opens the session's socket afterwards.
func TestSocketHalfHandshake(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	id, token := c.token("key-acme", nil)
	st := c.start(token)
	httpURL := "http" + strings.TrimPrefix(st.WSURL, "ws")

	for name, header := range map[string]http.Header{
		"no key":      {"Sec-Websocket-Version": {"13"}},
		"short key":   {"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"c2hvcnQ="}},
		"version 8":   {"Sec-Websocket-Version": {"8"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}},
		"no version":  {"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}},
		"garbled key": {"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"!!!!"}},
	} {
		req, err := http.NewRequest("GET", httpURL, nil)
		require.NoError(t, err)
		req.Header = header
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, name)
		assert.Equal(t, "connecting", c.get("key-acme", id).State, name)
	}

	ws, _, err := dialLite(t, st.WSURL)
	require.NoError(t, err, "the ws_url still opens the socket")
	assert.Equal(t, "connecting", ws.next().State)
	assert.Equal(t, "connected", ws.next().State)
}
