package liveavatar_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/liveavatar"
)

// TestRefusedNamesNoSessionID checks that refusals of the paths that carry
// a session id (GET /v1/sessions/{id} and the socket) reach Hooks.Refused
// with the route, never the raw id, and with the id's hash.
func TestRefusedNamesNoSessionID(t *testing.T) {
	var mu sync.Mutex
	var refusals []server.Refusal
	n := newNode(t, nodeOptions{socket: func(cfg *liveavatar.Config) {
		cfg.Hooks.Refused = func(r server.Refusal) {
			mu.Lock()
			defer mu.Unlock()
			refusals = append(refusals, r)
		}
	}})
	c := client{t: t, base: n.httpServer()}
	id, token := c.token("key-globex", nil)
	st := c.start(token)

	c.call("GET", "/v1/sessions/"+id, "key-acme", nil)                                    // another account's session
	_, _, err := dialLite(t, strings.Replace(st.WSURL, "credential=", "credential=x", 1)) // a wrong credential
	require.Error(t, err)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, refusals, 2)
	for i, want := range []string{liveavatar.PathSession, liveavatar.PathSocket} {
		r := refusals[i]
		assert.Equal(t, want, r.Endpoint)
		assert.Equal(t, server.ShortHash(id), r.SessionHash, want)
		assert.NotContains(t, r.Endpoint, id)
		assert.NotContains(t, r.Err.Error(), id)
	}
}
