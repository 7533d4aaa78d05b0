package liveavatar_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server/liveavatar"
)

// TestSlowBody checks that a request body not all there within
// Config.BodyReadTimeout is answered 408/400175 and the connection closed,
// and that the token it asked for is not minted (the account's one slot
// stays free), as the Streaming API does: before, a client trickling its
// body held the handler for as long as it liked.
func TestSlowBody(t *testing.T) {
	n := newNode(t, nodeOptions{socket: func(c *liveavatar.Config) { c.BodyReadTimeout = 200 * time.Millisecond }})
	base := n.httpServer()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	body := `{"mode":"LITE","avatar_id":"Wayne_20240711"}`
	_, err = io.WriteString(conn, "POST "+liveavatar.PathToken+" HTTP/1.1\r\nHost: x\r\nX-API-KEY: key-limited\r\n"+
		"Content-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body[:10])
	require.NoError(t, err)

	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the server answers once the body's time is up")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	assert.Contains(t, string(b), `"code":400175`)
	assert.True(t, resp.Close, "the connection closes")

	c := client{t: t, base: base}
	c.token("key-limited", nil) // the plan's one session is still free
}
