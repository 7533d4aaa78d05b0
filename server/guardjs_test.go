package server

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	guardjs "github.com/streamsession/streamsession/js/guard"
)

func TestGuardJS(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Origins = []string{"http://localhost:*"} })
	const origin = "http://localhost:3000"

	r := e.do(http.MethodGet, PathGuardJS, map[string]string{"Origin": origin}, nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, string(guardjs.IndexJS), r.body, "the body is js/guard/index.js")
	assert.Equal(t, "text/javascript; charset=utf-8", r.header.Get("Content-Type"))
	assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
	assert.Equal(t, origin, r.header.Get("Access-Control-Allow-Origin"), "a page on another origin may import it")
	assert.Equal(t, "no-cache", r.header.Get("Cache-Control"))
	etag := r.header.Get("ETag")
	assert.Regexp(t, `^"[0-9a-f]{32}"$`, etag)

	r = e.do(http.MethodGet, PathGuardJS, map[string]string{"If-None-Match": etag}, nil)
	assert.Equal(t, http.StatusNotModified, r.status, "revalidated with its ETag")

	r = e.do(http.MethodGet, PathGuardJS, map[string]string{"Origin": "https://evil.example.com"}, nil)
	assert.Equal(t, http.StatusOK, r.status, "the rules are public")
	assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"), "no CORS header for an origin not allowed")

	r = e.do(http.MethodOptions, PathGuardJS, map[string]string{"Origin": origin, "Access-Control-Request-Method": "GET"}, nil)
	assert.Equal(t, http.StatusNoContent, r.status, "preflight")
	assert.Equal(t, origin, r.header.Get("Access-Control-Allow-Origin"))

	r = e.do(http.MethodPost, PathGuardJS, nil, "{}")
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.JSONEq(t, `{"code":40051,"message":"Resource is not found"}`, r.body)
}
