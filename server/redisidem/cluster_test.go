package redisidem

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/idempotencytest"
)

// TestRedisCluster runs the IdempotencyStore suite on a Redis Cluster of
// three masters (each script's key is under its account's hash tag, so it
// runs on one slot), and checks that two accounts' keys land on different
// slots and that a second node replays the first node's answer.
func TestRedisCluster(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)
	client := c.Client()
	cases := 0
	idempotencytest.Run(t, func(t *testing.T) server.IdempotencyStore {
		cases++
		s, err := New(client, Config{Secret: testSecret, Prefix: fmt.Sprintf("cluster-idem-%d", cases)})
		require.NoError(t, err)
		return s
	})
	// The eviction past the bound deletes keys of the account's hash tag
	// from the index's script: on a cluster too.
	idempotencytest.RunBounded(t, func(t *testing.T, maxKeys int) server.IdempotencyStore {
		cases++
		s, err := New(client, Config{Secret: testSecret, Prefix: fmt.Sprintf("cluster-idem-%d", cases), MaxKeysPerAccount: maxKeys})
		require.NoError(t, err)
		return s
	})

	a, err := New(client, Config{Secret: testSecret, Prefix: "cluster-idem"})
	require.NoError(t, err)
	b, err := New(c.Client(), Config{Secret: testSecret, Prefix: "cluster-idem"})
	require.NoError(t, err)
	slots := map[int64]bool{}
	for i := range 8 {
		account := fmt.Sprintf("acct-%d", i)
		k := server.IdempotencyKey{Account: account, Key: "k", BodyHash: sha256.Sum256([]byte("{}"))}
		slot, err := client.ClusterKeySlot(ctx, a.key(k)).Result()
		require.NoError(t, err)
		slots[slot] = true
		res, err := a.Begin(ctx, k)
		require.NoError(t, err)
		answer := &server.StoredAnswer{Status: 200, ContentType: "application/json", Body: []byte(account)}
		require.NoError(t, a.Finish(ctx, k, res.Owner, answer))
		again, err := b.Begin(ctx, k)
		require.NoError(t, err)
		require.NotNil(t, again.Replay, account)
		assert.Equal(t, *answer, *again.Replay)
	}
	ranges, err := client.ClusterSlots(ctx).Result()
	require.NoError(t, err)
	masters := map[string]bool{}
	for slot := range slots {
		for _, r := range ranges {
			if int64(r.Start) <= slot && slot <= int64(r.End) {
				masters[r.Nodes[0].Addr] = true
			}
		}
	}
	assert.Greater(t, len(masters), 1, "accounts spread over masters (slots %v)", slots)
}
