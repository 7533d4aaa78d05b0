package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSentinelsFailOver: a write acknowledged by the replica (WAIT) is on
// the master the Sentinels promote after the first one is killed.
func TestSentinelsFailOver(t *testing.T) {
	ss := StartSentinels(t, SentinelOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: ss.SentinelAddrs()})
	defer c.Close()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	n, err := c.Wait(ctx, 1, 5000).Result()
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	old, err := ss.Master(ctx)
	require.NoError(t, err)
	require.Equal(t, ss.Servers()[0], old)
	start := time.Now()
	old.Kill()
	next, err := ss.WaitFailover(ctx, old)
	require.NoError(t, err)
	t.Logf("failover in %v", time.Since(start).Round(time.Millisecond))
	assert.Equal(t, ss.Servers()[1], next)
	got, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "v", got)
}
