package redisrelay

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/server/realtime"
)

// TestRedisCluster is TestOneOrderForEveryNode on a Redis Cluster of three
// masters, each node with a *redis.ClusterClient of its own: every
// subscription of every node receives every message once, all in one
// order, and each publisher's messages in the order it published them.
// (With PUBLISH sent to any master, as go-redis routes a command without a
// key, a publisher's messages arrived out of order in every run.)
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	a := newRelay(t, c.Client(), Config{Prefix: "cluster"})
	b := newRelay(t, c.Client(), Config{Prefix: "cluster"})
	inboxes := []*inbox{subscribe(t, a), subscribe(t, b), subscribe(t, b)}

	// Every subscription is on the master of the channel's slot, where
	// Publish sends every message.
	ctx := context.Background()
	master, err := c.Client().MasterForKey(ctx, a.channel)
	require.NoError(t, err)
	for _, addr := range c.Addrs() {
		node := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		subs, err := node.PubSubNumSub(ctx, a.channel).Result()
		_ = node.Close()
		require.NoError(t, err)
		want := int64(0)
		if addr == master.Options().Addr {
			want = int64(len(inboxes))
		}
		assert.Equal(t, want, subs[a.channel], "subscriptions on %s", addr)
	}

	const perWorker, workers = 100, 4
	order := publishFromWorkers(t, []*Relay{a, b}, inboxes, workers, perWorker, func(w, i int) realtime.RelayMessage {
		return realtime.RelayMessage{Kind: realtime.RelaySpeak, TaskID: fmt.Sprintf("w%d-%d", w, i), Duration: time.Duration(i) * time.Millisecond}
	})
	for _, in := range inboxes {
		assert.Empty(t, in.ch, "nothing more than was published")
	}
	for w := range workers {
		var tasks, want []string
		for _, r := range order {
			if r.session == fmt.Sprintf("s%d", w) {
				tasks = append(tasks, r.msg.TaskID)
			}
		}
		for i := range perWorker {
			want = append(want, fmt.Sprintf("w%d-%d", w, i))
		}
		require.Equal(t, want, tasks, "worker %d's messages, complete and in its order", w)
	}
}
