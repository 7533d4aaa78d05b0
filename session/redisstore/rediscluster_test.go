package redisstore

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
)

// TestRedisCluster runs the store contract and the change feed through
// *redis.ClusterClient on a Redis Cluster of three masters. One cluster (a
// start costs about two seconds) serves every subtest, each under a prefix
// of its own.
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	for _, tc := range storeContract {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newClusterBackend(c)) })
	}
	t.Run("events reach every node", func(t *testing.T) { testClusterEventsReachEveryNode(t, newClusterBackend(c)) })
}

var clusterPrefixes atomic.Int64

// clusterBackend is a Redis Cluster with a prefix of the test's own: each
// node gets a cluster client of its own.
type clusterBackend struct {
	c      *redistest.Cluster
	prefix string
}

func newClusterBackend(c *redistest.Cluster) clusterBackend {
	return clusterBackend{c: c, prefix: "c" + strconv.FormatInt(clusterPrefixes.Add(1), 10)}
}

// client returns a cluster client with ContextTimeoutEnabled, closed when
// t ends.
func (b clusterBackend) client(t testing.TB) *redis.ClusterClient {
	cc := b.c.Client()
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func (b clusterBackend) node(t testing.TB, cfg Config) *node {
	t.Helper()
	require.Empty(t, cfg.Prefix, "the backend chooses the prefix")
	cfg.Prefix = b.prefix
	s, err := New(b.client(t), cfg) // the client's cleanup runs after the store's
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	n := &node{Store: s, log: &eventLog{}}
	require.NoError(t, s.Watch(n.log.add))
	return n
}

// fresh returns an unwatched Store under a prefix of its own.
func (b clusterBackend) fresh(t testing.TB) *Store {
	t.Helper()
	s, err := New(b.client(t), Config{Prefix: "c" + strconv.FormatInt(clusterPrefixes.Add(1), 10)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// keys reads the keys on the master of the prefix's slot: the store keeps
// every key under its hash tag.
func (b clusterBackend) keys(t testing.TB) []string {
	t.Helper()
	ctx := context.Background()
	master, err := b.client(t).MasterForKey(ctx, "{"+b.prefix+"}")
	require.NoError(t, err)
	ks, err := master.Keys(ctx, "{"+b.prefix+"}:s:*").Result()
	require.NoError(t, err)
	return ks
}

// testClusterEventsReachEveryNode is TestEventsReachEveryNode on the
// cluster: two nodes, each with a cluster client of its own.
func testClusterEventsReachEveryNode(t *testing.T, b clusterBackend) {
	eventsReachEveryNode(t, b.node(t, Config{NodeID: "a"}), b.node(t, Config{NodeID: "b"}))
}
