package redislimiter_test

import (
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits/limitertest"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

// TestConformance runs limits/limitertest, unchanged, against the Redis
// limiter: each case gets a redis-server of its own, and the limiter's clock
// (Config.Clock) is a testClock that runs from cfg.Start and that Advance
// moves. (TestRedisTimeIsTheDefaultClock covers the clock of production.)
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
				clock := &testClock{}
				clock.SetNow(cfg.Start)
				if cfg.Frozen {
					clock.Freeze(cfg.Start)
				}
				lim, err := redislimiter.New(srv.NewClient(&c.opt), redislimiter.Config{
					Capacity: cfg.Capacity,
					LeaseTTL: cfg.LeaseTTL,
					Clock:    clock.Now,
				})
				require.NoError(t, err)
				return limitertest.Harness{Limiter: lim, Advance: clock.Advance}
			})
		})
	}
}
