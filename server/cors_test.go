package server

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOriginPolicyAllows(t *testing.T) {
	p, err := NewOriginPolicy([]string{
		"https://app.example.com",
		"http://localhost:*",
		"http://127.0.0.1:*",
		"https://Admin.Example.com:8443/",
		"http://[::1]:3000",
		"https://tls.example.com:443",
	})
	require.NoError(t, err)
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"HTTPS://APP.EXAMPLE.COM", true},
		{"https://app.example.com:443", true}, // the default port
		{"http://app.example.com", false},     // another scheme
		{"https://app.example.com:8443", false},
		{"https://evil.app.example.com", false},
		{"https://app.example.com.evil.com", false},
		{"http://localhost:3000", true},
		{"http://localhost:1", true},
		{"http://localhost", true}, // the default port is a port too
		{"https://localhost:3000", false},
		{"http://localhost.evil.com:3000", false},
		{"http://127.0.0.1:5173", true},
		{"http://127.0.0.2:5173", false},
		{"https://admin.example.com:8443", true},
		{"https://admin.example.com", false},
		{"http://[::1]:3000", true},
		{"http://[::1]:3001", false},
		{"https://tls.example.com", true},
		{"null", false},
		{"", false},
		{"http://localhost:*", false}, // a pattern is not an origin
		{"http://localhost:3000/path", false},
		{"localhost:3000", false},
	}
	for _, tt := range tests {
		if got := p.Allows(tt.origin); got != tt.want {
			t.Errorf("Allows(%q) = %v, want %v", tt.origin, got, tt.want)
		}
	}

	anyOrigin, err := NewOriginPolicy([]string{"*"})
	require.NoError(t, err)
	assert.True(t, anyOrigin.Allows("https://anything.example"))
	assert.True(t, anyOrigin.Allows("null"))
	assert.False(t, anyOrigin.Allows(""), "no Origin header is not an origin")

	none, err := NewOriginPolicy(nil)
	require.NoError(t, err)
	assert.False(t, none.Allows("http://localhost:3000"))
	assert.False(t, (*OriginPolicy)(nil).Allows("http://localhost:3000"))
}

func TestOriginPolicyRefusesMalformed(t *testing.T) {
	for _, o := range []string{
		"", "localhost:3000", "app.example.com", "https://", "https://app.example.com/path",
		"https://app.example.com?q=1", "https://user@app.example.com", "http://localhost:*:3000",
		"http://localhost:3000:*", "http://localhost:abc", "http://localhost:70000", "http://localhost:",
		"*.example.com", "https://*.example.com",
	} {
		_, err := NewOriginPolicy([]string{"https://ok.example.com", o})
		assert.Error(t, err, "%q", o)
		if err != nil {
			assert.Contains(t, err.Error(), "[1]", "the error names the entry")
		}
	}
}

func TestNewRefusesMalformedOrigins(t *testing.T) {
	e := newEnv(t, nil)
	_, err := New(Config{Manager: e.mgr, Accounts: testAccts, Avatars: testAvatars, Origins: []string{"localhost:3000"}})
	assert.ErrorContains(t, err, `server: Config.Origins[0] "localhost:3000"`)
}

// corsHeaders are the CORS headers of an answer.
func corsHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods",
		"Access-Control-Allow-Headers", "Access-Control-Max-Age", "Access-Control-Expose-Headers",
		"Access-Control-Allow-Credentials"} {
		if v := h.Get(k); v != "" {
			out[k] = v
		}
	}
	return out
}

func TestCORSHeaders(t *testing.T) {
	e := rateEnv(t, RateLimit{PerSecond: 1, Burst: 1}, func(c *Config) {
		c.Origins = []string{"http://localhost:*", "https://app.example.com"}
	})
	const allowed, refused = "http://localhost:3000", "https://evil.example.com"
	preflight := func(origin, _, method string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": method,
			"Access-Control-Request-Headers": "x-api-key,content-type"}
	}
	withOrigin := func(origin string, hdr map[string]string) map[string]string {
		out := map[string]string{"Origin": origin}
		for k, v := range hdr {
			out[k] = v
		}
		return out
	}
	real := map[string]string{"Access-Control-Allow-Origin": allowed, "Access-Control-Expose-Headers": "Retry-After, Idempotent-Replayed"}
	tests := []struct {
		name       string
		method     string
		path       string
		hdr        map[string]string
		body       any
		wantStatus int
		wantCORS   map[string]string
	}{
		{"preflight of a POST", http.MethodOptions, PathNew, preflight(allowed, PathNew, "POST"), nil, http.StatusNoContent, map[string]string{
			"Access-Control-Allow-Origin":  allowed,
			"Access-Control-Allow-Methods": "POST",
			"Access-Control-Allow-Headers": "Authorization, X-Api-Key, Content-Type, Idempotency-Key",
			"Access-Control-Max-Age":       "600",
		}},
		{"preflight of a GET", http.MethodOptions, PathAvatarList, preflight("https://app.example.com", PathAvatarList, "GET"), nil, http.StatusNoContent, map[string]string{
			"Access-Control-Allow-Origin":  "https://app.example.com",
			"Access-Control-Allow-Methods": "GET",
			"Access-Control-Allow-Headers": "Authorization, X-Api-Key, Content-Type, Idempotency-Key",
			"Access-Control-Max-Age":       "600",
		}},
		{"preflight from an origin not allowed", http.MethodOptions, PathNew, preflight(refused, PathNew, "POST"), nil, http.StatusNoContent, map[string]string{}},
		{"preflight of an unknown path", http.MethodOptions, "/v1/streaming.nope", preflight(allowed, "", "POST"), nil, http.StatusNotFound, map[string]string{"Access-Control-Allow-Origin": allowed}},
		{"OPTIONS that is no preflight", http.MethodOptions, PathNew, map[string]string{"Origin": allowed}, nil, http.StatusMethodNotAllowed, real},
		{"a call", http.MethodPost, PathCreateToken, withOrigin(allowed, key("key-acme")), "{}", http.StatusOK, real},
		{"a call over the rate limit", http.MethodPost, PathCreateToken, withOrigin(allowed, key("key-acme")), "{}", http.StatusTooManyRequests, real},
		{"a call without a key", http.MethodGet, PathList, withOrigin(allowed, nil), nil, http.StatusUnauthorized, real},
		{"a call from an origin not allowed", http.MethodGet, PathAvatarList, withOrigin(refused, key("key-trial")), nil, http.StatusOK, map[string]string{}},
		{"a call without an Origin", http.MethodGet, PathAvatarList, key("key-trial"), nil, http.StatusOK, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.hdr, tt.body)
			assert.Equal(t, tt.wantStatus, r.status, r.body)
			assert.Equal(t, tt.wantCORS, corsHeaders(r.header))
			assert.Equal(t, []string{"Origin"}, r.header.Values("Vary"))
			if tt.wantStatus == http.StatusNoContent {
				assert.Empty(t, r.body)
			}
			if tt.wantStatus == http.StatusTooManyRequests {
				assert.Equal(t, "1", r.header.Get("Retry-After"))
			}
		})
	}
	assert.Equal(t, 0, e.lim.heldCount())
}

func TestCORSOffWithoutOrigins(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do(http.MethodOptions, PathNew, map[string]string{"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}, nil)
	assert.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, corsHeaders(r.header))
	r = e.do(http.MethodGet, PathAvatarList, map[string]string{"Origin": "http://localhost:3000", "X-Api-Key": "key-acme"}, nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, corsHeaders(r.header))
	assert.Empty(t, r.header.Values("Vary"))
}
