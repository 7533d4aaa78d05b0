package liveavatar_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server/liveavatar"
)

// historicPage is a page of GET /v1/sessions.
type historicPage struct {
	Count    int      `json:"count"`
	Results  []listed `json:"results"`
	Next     *string  `json:"next"`
	Previous *string  `json:"previous"`
}

// TestHistoric: closed sessions of both surfaces, newest close first,
// paged as LiveAvatar pages, with mode and is_sandbox for an API-key
// caller; a session token sees its own closed session only.
func TestHistoric(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := n.client()
	lite, liteToken := c.token("key-acme", nil)
	sandbox, _ := c.token("key-acme", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711", "is_sandbox": true})
	full, _ := c.token("key-acme", map[string]any{"mode": "FULL", "avatar_id": "Wayne_20240711", "avatar_persona": map[string]any{}})
	open, _ := c.token("key-acme", nil)
	b := c.call("POST", "/v1/streaming.new", "key-acme", map[string]any{})
	require.Equal(t, http.StatusOK, b.Status, b.Body)
	var created struct {
		Data struct {
			SessionID string `json:"session_id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(b.Body), &created))
	streaming := created.Data.SessionID
	globex, _ := c.token("key-globex", nil)

	stop := func(key, id string) {
		t.Helper()
		c.call("POST", liveavatar.PathStop, key, map[string]any{"session_id": id}).data(t, http.StatusOK, nil)
	}
	stop("key-acme", full)
	stop("key-acme", lite)
	c.call("POST", "/v1/streaming.stop", "key-acme", map[string]any{"session_id": streaming})
	stop("key-acme", sandbox)
	stop("key-globex", globex)

	var p historicPage
	c.call("GET", "/v1/sessions?type=historic", "key-acme", nil).data(t, http.StatusOK, &p)
	assert.Equal(t, 4, p.Count)
	var ids []string
	for _, r := range p.Results {
		ids = append(ids, r.ID)
		assert.Equal(t, "closed", r.State)
		assert.Nil(t, r.Source)
	}
	assert.Equal(t, []string{sandbox, streaming, lite, full}, ids, "newest close first, both surfaces, not the open one (%s)", open)
	assert.Nil(t, p.Next)
	assert.Nil(t, p.Previous)
	modes := map[string]string{}
	sandboxes := map[string]bool{}
	for _, r := range p.Results {
		if r.Mode != nil {
			modes[r.ID] = *r.Mode
		}
		if r.IsSandbox != nil {
			sandboxes[r.ID] = *r.IsSandbox
		}
	}
	assert.Equal(t, map[string]string{sandbox: "LITE", lite: "LITE", full: "FULL"}, modes, "mode for an API-key caller; none for a Streaming API session")
	assert.Equal(t, map[string]bool{sandbox: true, lite: false, full: false}, sandboxes)
	assert.Equal(t, "FULL", *c.get("key-acme", full).Mode, "GET /v1/sessions/{id} too")

	c.call("GET", "/v1/sessions?type=historic&page=2&page_size=1", "key-acme", nil).data(t, http.StatusOK, &p)
	assert.Equal(t, 4, p.Count)
	require.Len(t, p.Results, 1)
	assert.Equal(t, streaming, p.Results[0].ID)
	require.NotNil(t, p.Next)
	require.NotNil(t, p.Previous)
	assert.Equal(t, "/v1/sessions?page=3&page_size=1&type=historic", *p.Next)
	assert.Equal(t, "/v1/sessions?page=1&page_size=1&type=historic", *p.Previous)
	c.call("GET", "/v1/sessions?type=historic&page=2&page_size=3", "key-acme", nil).data(t, http.StatusOK, &p)
	require.Len(t, p.Results, 1)
	assert.Equal(t, full, p.Results[0].ID)
	assert.Nil(t, p.Next)
	c.call("GET", "/v1/sessions?type=historic&page=9", "key-acme", nil).data(t, http.StatusOK, &p)
	assert.Equal(t, 4, p.Count)
	assert.Empty(t, p.Results)

	// A session token lists its own closed session only.
	c.call("GET", "/v1/sessions?type=historic", liteToken, nil).data(t, http.StatusOK, &p)
	require.Equal(t, 1, p.Count)
	assert.Equal(t, lite, p.Results[0].ID)

	c.call("GET", "/v1/sessions?type=historic", "key-globex", nil).data(t, http.StatusOK, &p)
	require.Equal(t, 1, p.Count)
	assert.Equal(t, globex, p.Results[0].ID)
}
