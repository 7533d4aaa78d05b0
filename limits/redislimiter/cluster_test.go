package redislimiter_test

import (
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits/limitertest"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

// TestRedisCluster runs the limiter through a *redis.ClusterClient on a Redis
// Cluster of three masters: every script names its keys in KEYS[] under
// one hash tag, so Redis runs each on the one master of that slot. One
// cluster (a start costs about two seconds) serves every subtest, each
// under a prefix of its own.
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	t.Run("conformance", func(t *testing.T) { testClusterConformance(t, c) })
	t.Run("limits hold under many goroutines", func(t *testing.T) { testClusterManyGoroutines(t, c) })
}

// clusterClient returns a cluster client with ContextTimeoutEnabled that
// is closed when t ends.
func clusterClient(t *testing.T, c *redistest.Cluster, opt redis.ClusterOptions) *redis.ClusterClient {
	t.Helper()
	opt.ContextTimeoutEnabled = true
	cc := c.NewClient(&opt)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// testClusterConformance runs limits/limitertest, unchanged: each case gets
// a client and a prefix of its own, and the limiter's clock is a testClock
// that runs from cfg.Start and that Advance moves.
func testClusterConformance(t *testing.T, c *redistest.Cluster) {
	limitertest.Run(t, func(t *testing.T, cfg limitertest.Config) limitertest.Harness {
		clock := &testClock{}
		clock.SetNow(cfg.Start)
		if cfg.Frozen {
			clock.Freeze(cfg.Start)
		}
		lim, err := redislimiter.New(clusterClient(t, c, redis.ClusterOptions{}), redislimiter.Config{
			Prefix:   uniquePrefix(),
			Capacity: cfg.Capacity,
			LeaseTTL: cfg.LeaseTTL,
			Clock:    clock.Now,
		})
		require.NoError(t, err)
		return limitertest.Harness{Limiter: lim, Advance: clock.Advance}
	})
}

// testClusterManyGoroutines is TestLimitsHoldUnderManyGoroutines on the
// cluster: two limiters on two cluster clients stand for two nodes.
func testClusterManyGoroutines(t *testing.T, c *redistest.Cluster) {
	cfg := redislimiter.Config{Capacity: manyCapacity, Prefix: uniquePrefix()}
	var nodes []*redislimiter.Limiter
	for range 2 {
		lim, err := redislimiter.New(clusterClient(t, c, redis.ClusterOptions{PoolSize: 8}), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, lim.Close()) })
		nodes = append(nodes, lim)
	}
	limitsHoldUnderManyGoroutines(t, nodes, clusterClient(t, c, redis.ClusterOptions{}), cfg.Prefix)
}
