package liveavatar_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/liveavatar"
	"github.com/streamsession/streamsession/session"
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
		assert.Equal(t, session.ShortHash(id), r.SessionHash, want)
		assert.NotContains(t, r.Endpoint, id)
		assert.NotContains(t, r.Err.Error(), id)
	}
}

// TestListMode checks that every caller sees a session's mode and
// is_sandbox: a session token its own session's, the API key any of the
// account's (the session keeps them).
func TestListMode(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := n.client()
	for _, sandbox := range []bool{false, true} {
		id, token := c.token("key-acme", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711", "is_sandbox": sandbox})
		type entry struct {
			ID        string  `json:"id"`
			Mode      *string `json:"mode"`
			IsSandbox *bool   `json:"is_sandbox"`
		}
		var one entry
		c.call("GET", "/v1/sessions/"+id, token, nil).data(t, http.StatusOK, &one)
		require.NotNil(t, one.Mode)
		require.NotNil(t, one.IsSandbox)
		assert.Equal(t, "LITE", *one.Mode)
		assert.Equal(t, sandbox, *one.IsSandbox)

		var page struct{ Results []entry }
		c.call("GET", "/v1/sessions?type=active", token, nil).data(t, http.StatusOK, &page)
		require.Len(t, page.Results, 1)
		assert.Equal(t, one, page.Results[0])

		var byKey entry
		c.call("GET", "/v1/sessions/"+id, "key-acme", nil).data(t, http.StatusOK, &byKey)
		assert.Equal(t, one, byKey, "the API key sees them too")
	}
}
