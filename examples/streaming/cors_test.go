package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOriginsFlag(t *testing.T) {
	var f originsFlag
	assert.Nil(t, f.origins, "not given: the configuration's cors_origins apply")
	require.NoError(t, f.Set("https://a.example, http://localhost:*"))
	require.NoError(t, f.Set("https://b.example"))
	assert.Equal(t, []string{"https://a.example", "http://localhost:*", "https://b.example"}, f.origins)
	assert.Equal(t, "https://a.example,http://localhost:*,https://b.example", f.String())

	var none originsFlag
	require.NoError(t, none.Set(""))
	assert.Equal(t, []string{}, none.origins, `-cors-origin "" allows none`)
}

// TestCORSOriginFlag: the demo configuration allows localhost origins; the
// flag replaces them.
func TestCORSOriginFlag(t *testing.T) {
	preflight := func(base, origin string) *http.Response {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodOptions, base+"/v1/streaming.new", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	demo, _, _ := startServer(t)
	resp := preflight(demo, "http://localhost:3000")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "http://localhost:3000", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Empty(t, preflight(demo, "https://app.example.com").Header.Get("Access-Control-Allow-Origin"))

	flagged, _, _ := startServer(t, "-cors-origin", "https://app.example.com")
	assert.Equal(t, "https://app.example.com", preflight(flagged, "https://app.example.com").Header.Get("Access-Control-Allow-Origin"))
	assert.Empty(t, preflight(flagged, "http://localhost:3000").Header.Get("Access-Control-Allow-Origin"), "the flag replaces the configuration's origins")

	var out, errOut lockedBuffer
	assert.Equal(t, 1, run(context.Background(), []string{"-addr", "127.0.0.1:0", "-cors-origin", "localhost:3000"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `Config.Origins[0] "localhost:3000"`)
}
