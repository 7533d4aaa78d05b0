package rediswait

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
)

// TestBarrier: with a replica in sync the barrier is acknowledged by it
// and the write before it is on the replica; with the replica gone it
// ends at its timeout with no acknowledgement, and no error.
func TestBarrier(t *testing.T) {
	ctx := context.Background()
	master := redistest.Start(t)
	_, port, err := net.SplitHostPort(master.Addr())
	require.NoError(t, err)
	replica := redistest.StartWith(t, redistest.Options{Args: []string{"--replicaof", "127.0.0.1", port}})
	rc := replica.Client()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := rc.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			break
		}
		require.True(t, time.Now().Before(deadline), "the replica is not in sync")
		time.Sleep(20 * time.Millisecond)
	}
	mc := master.Client()
	// Written on another connection of the pool than the barrier's.
	require.NoError(t, mc.Set(ctx, "{p}:data", "v", 0).Err())
	acked, err := Barrier(ctx, mc, "{p}:wait", 1, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, acked)
	got, err := rc.Get(ctx, "{p}:data").Result()
	require.NoError(t, err)
	assert.Equal(t, "v", got)

	replica.Kill()
	start := time.Now()
	acked, err = Barrier(ctx, mc, "{p}:wait", 1, 100*time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, 0, acked)
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "WAIT waits its timeout for a replica that is gone")
}
