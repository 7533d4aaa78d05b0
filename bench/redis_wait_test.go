package bench

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/redisstore"
)

// BenchmarkRedisWait measures one session's life through a Manager on the
// Redis limiter and store (Create, then Stop) against a master with one
// replica, without WAIT (wait=0) and with redis_wait_replicas 1 (wait=1: a
// WAIT after the writes that create and end the session). cmd/ratios
// reports ns/op wait=1 / wait=0: what durability against a failover costs.
func BenchmarkRedisWait(b *testing.B) {
	master := startRedis(b)
	_, port, err := net.SplitHostPort(master.Addr())
	if err != nil {
		b.Fatal(err)
	}
	replica := redistest.StartWith(b, redistest.Options{Args: []string{"--replicaof", "127.0.0.1", port}})
	ctx := context.Background()
	rc := replica.Client()
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := rc.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the replica is not in sync: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	acct := session.Account{Name: "bench", Plan: limits.PaidPlan}
	for _, n := range []int{0, 1} {
		b.Run(fmt.Sprintf("wait=%d", n), func(b *testing.B) {
			client := master.Client()
			prefix := fmt.Sprintf("wait%d", n)
			var short atomic.Int64
			onShort := func(int, error) { short.Add(1) }
			lim, err := redislimiter.New(client, redislimiter.Config{Prefix: prefix, WaitReplicas: n, OnWaitShort: onShort})
			if err != nil {
				b.Fatal(err)
			}
			defer lim.Close()
			store, err := redisstore.New(client, redisstore.Config{Prefix: prefix, WaitReplicas: n, OnWaitShort: onShort})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars, Store: store})
			if err != nil {
				b.Fatal(err)
			}
			defer mgr.Close(ctx)
			for b.Loop() {
				info, err := mgr.Create(ctx, acct, session.CreateOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := mgr.Stop(ctx, acct.Name, info.ID); err != nil {
					b.Fatal(err)
				}
			}
			if k := short.Load(); k > 0 {
				b.Fatalf("%d WAITs ended short of %d replicas", k, n)
			}
		})
	}
}
