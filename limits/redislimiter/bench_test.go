package redislimiter_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

// benchGoroutines is how many goroutines share one client in the Redis
// benchmarks, whatever GOMAXPROCS is.
const benchGoroutines = 32

// benchClient is the client both benchmarks use: one connection per
// goroutine, so neither waits for the pool, and a hook that counts round
// trips.
func benchClient(b *testing.B, srv *redistest.Server) (*redis.Client, *countingHook) {
	c := srv.NewClient(&redis.Options{ContextTimeoutEnabled: true, PoolSize: benchGoroutines, MinIdleConns: benchGoroutines})
	h := &countingHook{countOnly: true}
	c.AddHook(h)
	return c, h
}

// parallel runs op b.N times in all, spread over benchGoroutines goroutines,
// and reports the rate as name/s and the round trips per op.
func parallel(b *testing.B, h *countingHook, name string, op func(g int, i int64) error) {
	h.reset()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr atomic.Value
	)
	b.ResetTimer()
	for g := range benchGoroutines {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(g, i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), name+"/s")
	b.ReportMetric(float64(h.commands.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkRedisAcquireRelease measures acquire + release pairs (one op is a
// pair) at 32 goroutines, each on an account of its own under a paid plan,
// with a service capacity to check. Compare with BenchmarkRedisPing/g=32 of
// the same run: the goal is pairs/s ≥ 0.4 × PINGs/s.
func BenchmarkRedisAcquireRelease(b *testing.B) {
	srv := redistest.Start(b)
	b.Run("g=32", func(b *testing.B) {
		c, h := benchClient(b, srv)
		lim, err := redislimiter.New(c, redislimiter.Config{Prefix: "bench", Capacity: 10 * benchGoroutines})
		if err != nil {
			b.Fatal(err)
		}
		defer lim.Close()
		ctx := context.Background()
		accounts := make([]string, benchGoroutines)
		for g := range accounts {
			accounts[g] = "acct" + strconv.Itoa(g)
		}
		// Load the scripts before timing.
		d, err := lim.Acquire(ctx, req(accounts[0], "warm", limits.PaidPlan))
		if err != nil {
			b.Fatal(err)
		}
		if err := lim.Release(ctx, d.Lease); err != nil {
			b.Fatal(err)
		}
		parallel(b, h, "pairs", func(g int, i int64) error {
			d, err := lim.Acquire(ctx, limits.Request{Account: accounts[g], Plan: limits.PaidPlan, SessionID: "s" + strconv.FormatInt(i, 10)})
			if err != nil {
				return err
			}
			if !d.Granted() {
				b.Errorf("acquire refused by %v", d.Refused)
				return nil
			}
			return lim.Release(ctx, d.Lease)
		})
		// Two limiter calls per op, at most one round trip each: under 2
		// roundtrips/op when calls waiting together share a script.
	})
}

// BenchmarkRedisPing is the floor of BenchmarkRedisAcquireRelease: one PING
// per op at 32 goroutines, on the same kind of client.
func BenchmarkRedisPing(b *testing.B) {
	srv := redistest.Start(b)
	b.Run("g=32", func(b *testing.B) {
		c, h := benchClient(b, srv)
		ctx := context.Background()
		if err := c.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		parallel(b, h, "pings", func(int, int64) error { return c.Ping(ctx).Err() })
	})
}

// BenchmarkRedisEmptyScriptPair is the floor of a design with one script
// per decision (the Limiter's with BatchSize 1): two scripts that do
// nothing, sent with the keys and arguments of an acquire and a release, at
// 32 goroutines.
func BenchmarkRedisEmptyScriptPair(b *testing.B) {
	srv := redistest.Start(b)
	b.Run("g=32", func(b *testing.B) {
		c, h := benchClient(b, srv)
		ctx := context.Background()
		acquire := redis.NewScript("return {0, 1}")
		release := redis.NewScript("return 1")
		keys := func(account string) []string {
			return []string{"{bench}:cap", "{bench}:slots:" + account, "{bench}:run:" + account, "{bench}:used:" + account, "{bench}:epoch"}
		}
		if err := acquire.Run(ctx, c, keys("a"), "warm").Err(); err != nil {
			b.Fatal(err)
		}
		if err := release.Run(ctx, c, keys("a")[:4], "warm").Err(); err != nil {
			b.Fatal(err)
		}
		parallel(b, h, "pairs", func(g int, i int64) error {
			account := "acct" + strconv.Itoa(g)
			sid := "s" + strconv.FormatInt(i, 10)
			member := "6:" + account + sid
			if err := acquire.Run(ctx, c, keys(account), sid, member, 0, "30000", 100, "0", "0", "320", "64", "0", account, 0).Err(); err != nil {
				return err
			}
			return release.Run(ctx, c, keys(account)[:4], sid, member, 0, 0).Err()
		})
	})
}
