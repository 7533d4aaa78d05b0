package redislimiter_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits/limitertest"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

// TestConformance runs limits/limitertest, unchanged, against the Redis
// limiter: each case gets a redis-server of its own, and the limiter's clock
// is Redis TIME plus an offset that Advance moves.
//
// It runs twice: with a client that bounds socket reads by the context
// (ContextTimeoutEnabled), and with one that does not, where the limiter
// runs each call on a goroutine of its own.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  redis.Options
	}{
		{"context timeouts", redis.Options{ContextTimeoutEnabled: true}},
		{"guarded calls", redis.Options{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			limitertest.Run(t, func(t *testing.T, cfg limitertest.Config) limitertest.Harness {
				srv := redistest.Start(t)
				lim, err := redislimiter.New(srv.NewClient(&c.opt), redislimiter.Config{
					Capacity: cfg.Capacity,
					LeaseTTL: cfg.LeaseTTL,
				})
				require.NoError(t, err)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				require.NoError(t, lim.SetNow(ctx, cfg.Start))
				return limitertest.Harness{Limiter: lim, Advance: lim.Advance}
			})
		})
	}
}
