package redisrate

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/ratelimittest"
)

// TestRedisCluster runs the RateLimiter suite on a Redis Cluster of three
// masters, each limiter on a client of its own, and checks that the
// accounts' budgets spread over the slots and that two nodes share one
// budget per account.
func TestRedisCluster(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)
	ratelimittest.Run(t, func(t *testing.T) server.RateLimiter {
		l, err := New(c.Client(), Config{Prefix: "cluster-rate"})
		require.NoError(t, err)
		return l
	})

	a, err := New(c.Client(), Config{Prefix: "cluster-shared"})
	require.NoError(t, err)
	b, err := New(c.Client(), Config{Prefix: "cluster-shared"})
	require.NoError(t, err)
	admin := c.Client()
	limit := server.RateLimit{PerSecond: 0.01, Burst: 2} // one every 100 s
	slots := map[int64]bool{}
	for i := range 8 {
		account := fmt.Sprintf("acct-%d", i)
		slot, err := admin.ClusterKeySlot(ctx, "rate:"+a.key(account)).Result()
		require.NoError(t, err)
		slots[slot] = true
		for j, l := range []*Limiter{a, b, a} {
			d, err := l.Allow(ctx, account, limit)
			require.NoError(t, err)
			assert.Equal(t, j < 2, d.Allowed, "%s call %d", account, j)
		}
		n, err := admin.Exists(ctx, "rate:"+a.key(account)).Result()
		require.NoError(t, err)
		assert.Equal(t, int64(1), n, "the budget is at its documented key")
	}
	ranges, err := admin.ClusterSlots(ctx).Result()
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
