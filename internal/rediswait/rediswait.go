// Package rediswait makes a Redis write durable on replicas before a call
// returns: the barrier behind the redis_wait_replicas setting of the Redis
// backends.
//
// Redis's WAIT blocks until the replicas acknowledged every write the
// connection it runs on made. A backend's writes go through a pool of
// connections (and, in the limiter, through batches), so Barrier makes one
// small write of its own and WAITs on the same connection: replication is
// one ordered stream, so when the replicas have that write they have every
// write the master applied before it, the caller's included.
package rediswait

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultTimeout bounds a Barrier when its timeout is zero.
const DefaultTimeout = time.Second

// Barrier writes key (a short-lived marker; give it the hash tag of the
// writes it follows, so that on a Redis Cluster it lands on their master)
// and waits until n replicas acknowledged it, or timeout passed. It
// returns how many replicas acknowledged; fewer than n is not an error
// (the write is on the master, and a replica that is down must not stop
// the service): the caller counts or logs it. An error means Redis did
// not answer.
func Barrier(ctx context.Context, client redis.UniversalClient, key string, n int, timeout time.Duration) (int, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var c redis.Cmdable = client
	if cc, ok := client.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return 0, err
		}
		c = m
	}
	var wait *redis.Cmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, "1", time.Minute)
		wait = p.Do(ctx, "WAIT", n, timeout.Milliseconds())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rediswait: %w", err)
	}
	acked, err := wait.Int()
	if err != nil {
		return 0, fmt.Errorf("rediswait: %w", err)
	}
	return acked, nil
}
