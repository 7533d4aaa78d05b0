package server

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newWithHost calls streaming.new with a forged Host header and an
// Idempotency-Key.
func (e *env) newWithHost(host, idemKey string) created {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.http.URL+PathNew, strings.NewReader(`{}`))
	require.NoError(e.t, err)
	req.Host = host
	req.Header.Set("X-Api-Key", "key-acme")
	req.Header.Set("Idempotency-Key", idemKey)
	resp, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var c created
	e.data(readResponse(e.t, resp), &c)
	return c
}

func readResponse(t *testing.T, resp *http.Response) response {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// TestRealtimeEndpointIgnoresHost: a forged Host reaches neither
// realtime_endpoint nor url, nor the answer replayed to the next caller
// of the same Idempotency-Key: they name the address the server was
// reached on, or Config.BaseURL.
func TestRealtimeEndpointIgnoresHost(t *testing.T) {
	for _, tc := range []struct {
		name, baseURL, want string
	}{
		{"listen address", "", ""},
		{"public URL", "https://api.example.com", "wss://api.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.BaseURL = tc.baseURL })
			want := tc.want
			if want == "" {
				want = "ws://" + strings.TrimPrefix(e.http.URL, "http://")
			}
			first := e.newWithHost("evil.example", "k1")
			assert.True(t, strings.HasPrefix(first.RealtimeEndpoint, want+PathRealtime+"?"), first.RealtimeEndpoint)
			assert.Equal(t, first.RealtimeEndpoint, first.URL)
			assert.NotContains(t, first.RealtimeEndpoint, "evil")

			replayed := e.newWithHost("other.example", "k1")
			assert.Equal(t, first, replayed)
		})
	}
}
