package redistest

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCluster starts one cluster (a start costs about two seconds) for
// both checks: it serves every slot, and its cleanup reaps every process.
func TestCluster(t *testing.T) {
	var pids []int
	t.Run("serves every slot", func(t *testing.T) {
		c := StartCluster(t, 3)
		for _, n := range c.nodes {
			n.mu.Lock()
			pids = append(pids, n.proc.cmd.Process.Pid)
			n.mu.Unlock()
			require.NoError(t, syscall.Kill(pids[len(pids)-1], 0), "node process alive during the test")
		}
		testClusterServesEverySlot(t, c)
	})
	// The cleanup closed the clients and waited for every process.
	require.Len(t, pids, 3)
	for _, pid := range pids {
		assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "pid %d", pid)
	}
}

// testClusterServesEverySlot writes keys of many slots through a cluster
// client and reads each back directly from the master StartCluster gave
// its slot: the keys are spread over every master, and the others answer
// MOVED.
func testClusterServesEverySlot(t *testing.T, c *Cluster) {
	masters := len(c.nodes)
	addrs := c.Addrs()
	require.Len(t, addrs, masters)
	ctx := context.Background()
	cc := c.Client()
	require.NoError(t, cc.Ping(ctx).Err())

	direct := make([]*redis.Client, masters)
	for i, n := range c.nodes {
		assert.True(t, strings.HasPrefix(addrs[i], "127.0.0.1:"), "Addrs()[%d] = %q, want a loopback address", i, addrs[i])
		direct[i] = n.NewClient(&redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1})
	}
	// The configuration Start promises holds for every node.
	for i, d := range direct {
		cfg, err := d.ConfigGet(ctx, "*").Result()
		require.NoError(t, err)
		for _, tc := range []struct{ key, want string }{
			{"save", ""}, {"appendonly", "no"}, {"enable-debug-command", "local"}, {"cluster-enabled", "yes"},
		} {
			assert.Equal(t, tc.want, cfg[tc.key], "node %d: %s", i, tc.key)
		}
	}

	plan := c.plan()
	owner := func(slot int) int {
		for i, r := range plan {
			if r.start <= slot && slot <= r.end {
				return i
			}
		}
		t.Fatalf("slot %d has no master in %v", slot, plan)
		return -1
	}
	perMaster := make([]int, masters)
	for i := range 60 {
		key := fmt.Sprintf("key-%d", i)
		require.NoError(t, cc.Set(ctx, key, i, 0).Err(), "SET %s through the cluster client", key)
		slot, err := direct[0].ClusterKeySlot(ctx, key).Result()
		require.NoError(t, err)
		m := owner(int(slot))
		perMaster[m]++
		got, err := direct[m].Get(ctx, key).Int()
		require.NoError(t, err, "GET %s on master %d, which serves slot %d", key, m, slot)
		assert.Equal(t, i, got)
		other := direct[(m+1)%masters]
		err = other.Get(ctx, key).Err()
		require.Error(t, err)
		assert.True(t, strings.HasPrefix(err.Error(), "MOVED "), "GET %s on master %d: %v, want MOVED", key, (m+1)%masters, err)
	}
	for m, n := range perMaster {
		assert.Positive(t, n, "keys on master %d", m)
	}

}
