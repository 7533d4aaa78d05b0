package clustertest

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecretFile: nodes started with one -secret-file share that secret
// without Redis (Redis holds none), so a bearer token minted through one
// node works through another; a node with another secret refuses it, and a
// secret file too short stops the node at start.
func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	shared := write("shared", "0123456789abcdef0123456789abcdef\n")
	c := newCluster(t, 2, "-secret-file", shared)
	keys, err := c.admin.Keys(context.Background(), "*secret*").Result()
	require.NoError(t, err)
	assert.Empty(t, keys, "the secret is not in Redis")

	a := call(c.nodes[0].base, http.MethodPost, "/v1/streaming.create_token", "key-a0", map[string]any{})
	require.NoError(t, a.err)
	require.Equal(t, http.StatusOK, a.status)
	var tok struct{ Token string }
	require.NoError(t, json.Unmarshal(a.data, &tok))
	a = call(c.nodes[1].base, http.MethodPost, "/v1/streaming.new", tok.Token, map[string]any{})
	require.NoError(t, a.err)
	assert.Equal(t, http.StatusOK, a.status, "a token of one node works on the other")

	other := c.start(binary(t), "n2", "-secret-file", write("other", "fedcba9876543210fedcba9876543210"))
	a = call(other.base, http.MethodGet, "/v1/streaming.list", tok.Token, nil)
	require.NoError(t, a.err)
	assert.Equal(t, http.StatusUnauthorized, a.status, "a node with another secret does not accept it")

	out, err := exec.Command(binary(t), "-addr", "127.0.0.1:0", "-secret-file", write("short", "too short\n")).CombinedOutput()
	assert.Error(t, err)
	assert.Contains(t, string(out), "a secret needs 16 or more")
}
