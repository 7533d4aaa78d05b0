package redistokens

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/server"
)

// TestRedisCluster takes every step of a token's life through one of four
// nodes, each with a *redis.ClusterClient of its own on a Redis Cluster of
// three masters, and has the nodes agree on the shared secret.
func TestRedisCluster(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)
	const prefix = "cluster-tokens"
	clients := make([]*redis.ClusterClient, 4)
	nodes := make([]*Store, 4)
	for i := range nodes {
		clients[i] = c.Client()
		s, err := New(clients[i], Config{Prefix: prefix})
		require.NoError(t, err)
		nodes[i] = s
	}
	a, b := nodes[0], nodes[1]

	token, err := a.Mint(ctx, acct)
	require.NoError(t, err)
	got, err := b.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, server.Token{Account: acct}, got, "minted on a, known on b")
	_, err = b.Get(ctx, "sst_nope")
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)

	claimed, err := a.Claim(ctx, token)
	require.NoError(t, err)
	assert.True(t, claimed.Claimed)
	_, err = b.Claim(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "claimed twice")
	require.NoError(t, b.Unclaim(ctx, token))
	assert.ErrorIs(t, a.Unclaim(ctx, token), sserrors.ErrUnauthorized, "not claimed")

	// One claim wins among 64 concurrent ones from four nodes.
	assert.Equal(t, int32(1), concurrentClaims(nodes, token))

	require.NoError(t, b.Bind(ctx, token, "s1"))
	assert.ErrorIs(t, a.Bind(ctx, token, "s2"), sserrors.ErrUnauthorized, "bound once")
	got, err = nodes[2].Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, server.Token{Account: acct, SessionID: "s1"}, got)
	require.NoError(t, nodes[3].Revoke(ctx, token))
	_, err = a.Get(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "revoked on one node, gone on every node")

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
