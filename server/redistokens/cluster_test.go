package redistokens

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/tokenstest"
	"github.com/streamsession/streamsession/session"
)

// TestRedisCluster runs the TokenStore suite with each node on a
// *redis.ClusterClient of its own on a Redis Cluster of three masters (an
// account's keys share one hash tag, so every script runs on one slot), and
// has the nodes agree on the shared secret.
func TestRedisCluster(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)
	const prefix = "cluster-tokens"
	clients := make([]*redis.ClusterClient, 2)
	for i := range clients {
		clients[i] = c.Client()
	}
	cases := 0
	tokenstest.Run(t, func(t *testing.T, maxPerAccount int) [2]server.TokenStore {
		cases++
		var nodes [2]server.TokenStore
		for i := range nodes {
			s, err := New(clients[i], Config{Secret: testSecret, Prefix: fmt.Sprintf("%s-%d", prefix, cases),
				MaxPerAccount: func(session.Account) int { return maxPerAccount }})
			require.NoError(t, err)
			nodes[i] = s
		}
		return nodes
	})

	var err error
	secrets := make([][]byte, len(clients))
	for i, cc := range clients {
		secrets[i], err = SharedSecret(ctx, cc, prefix)
		require.NoError(t, err)
		assert.Len(t, secrets[i], 32)
		assert.Equal(t, secrets[0], secrets[i], "node %d agrees on the secret", i)
	}
	other, err := SharedSecret(ctx, clients[1], "cluster-other")
	require.NoError(t, err)
	assert.NotEqual(t, secrets[0], other, "another prefix, another service")
}
