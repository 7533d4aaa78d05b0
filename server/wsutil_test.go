package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseBaseURL(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"https://api.example.com/", "wss://api.example.com", ""},
		{"http://127.0.0.1:8080/base//?q=1#f", "ws://127.0.0.1:8080/base", ""},
		{"wss://x.test/p", "wss://x.test/p", ""},
		{"ws://x.test", "ws://x.test", ""},
		{"/relative", "", `"/relative" is not an absolute URL`},
		{"ftp://x.test", "", `"ftp://x.test": scheme must be http, https, ws or wss`},
		{"http://[::1", "", `"http://[::1" is not an absolute URL`},
	} {
		u, err := ParseBaseURL(tc.in)
		if tc.err != "" {
			assert.EqualError(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, u.String(), tc.in)
	}
}

func TestIsHandshake(t *testing.T) {
	good := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		return r
	}
	for _, tc := range []struct {
		name   string
		change func(*http.Request)
		want   bool
	}{
		{"a handshake", func(*http.Request) {}, true},
		{"POST", func(r *http.Request) { r.Method = http.MethodPost }, false},
		{"no Upgrade", func(r *http.Request) { r.Header.Del("Upgrade") }, false},
		{"version 8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, false},
		{"versions listed", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8, 13") }, true},
		{"short key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, false},
		{"key not base64", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "!!!") }, false},
	} {
		r := good()
		tc.change(r)
		assert.Equal(t, tc.want, IsHandshake(r), tc.name)
	}
}

func TestAllowsSocket(t *testing.T) {
	p, err := NewOriginPolicy([]string{"https://app.example.com"})
	require.NoError(t, err)
	for _, tc := range []struct {
		policy *OriginPolicy
		origin string
		want   bool
	}{
		{p, "", true},
		{p, "https://app.example.com", true},
		{p, "http://api.test:8080", true}, // the server's own
		{p, "https://evil.test", false},
		{nil, "https://app.example.com", false},
		{nil, "http://api.test:8080", true},
		{nil, "", true},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://api.test:8080/ws", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		assert.Equal(t, tc.want, tc.policy.AllowsSocket(r), "%v %q", tc.policy != nil, tc.origin)
	}
}
