package bench

import (
	"context"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

// redisGoroutines is how many goroutines share one client in the Redis
// benchmarks, whatever GOMAXPROCS is.
const redisGoroutines = 32

// startRedis starts a redis-server of the benchmark's own on a free loopback
// port (internal/redistest), or skips the benchmark with a message when
// redis-server is not installed.
func startRedis(b *testing.B) *redistest.Server {
	b.Helper()
	if _, err := exec.LookPath(redistest.Binary); err != nil {
		b.Skip("redis-server not found on PATH: install it (Debian/Ubuntu: apt-get install redis-server) to run the Redis benchmarks")
	}
	return redistest.Start(b)
}

// redisClient returns a client with one connection per goroutine, so that
// no goroutine waits for the pool, and a hook that counts round trips.
func redisClient(srv *redistest.Server) (*redis.Client, *roundTrips) {
	c := srv.NewClient(&redis.Options{ContextTimeoutEnabled: true, PoolSize: redisGoroutines})
	h := &roundTrips{}
	c.AddHook(h)
	return c, h
}

// roundTrips is a go-redis hook that counts the commands and pipelines sent
// to Redis: one each is one round trip.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// runGoroutines runs op b.N times in all, spread over redisGoroutines
// goroutines, and reports the rate as unit (name/s) and the round trips
// per op.
func runGoroutines(b *testing.B, c *redis.Client, h *roundTrips, unit string, op func(g int, i int64) error) {
	b.Helper()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	// Open every connection of the pool first, so that the commands that
	// set a new connection up are not counted as round trips of the op.
	var warm sync.WaitGroup
	for range redisGoroutines {
		warm.Go(func() { _ = c.Ping(context.Background()).Err() })
	}
	warm.Wait()
	h.n.Store(0)
	b.ResetTimer()
	for g := range redisGoroutines {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(g, i); err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
	b.ReportMetric(float64(h.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkRedisAcquireRelease is one Acquire + Release pair per op on the
// Redis limiter (limits/redislimiter), at 32 goroutines sharing one client,
// each on an account of its own under the paid plan, with a service-wide
// capacity to check. Goal: pairs/s ≥ 0.4× PINGs/s of BenchmarkRedisPing in
// the same run, with at most one round trip per call (≤ 2 roundtrips/op;
// fewer when calls that wait together share a script).
func BenchmarkRedisAcquireRelease(b *testing.B) {
	srv := startRedis(b)
	b.Run("g="+strconv.Itoa(redisGoroutines), func(b *testing.B) {
		c, h := redisClient(srv)
		benchPairs(b, c, h)
	})
}

// benchPairs measures Acquire + Release pairs on a Redis limiter over c.
func benchPairs(b *testing.B, c *redis.Client, h *roundTrips) {
	b.Helper()
	lim, err := redislimiter.New(c, redislimiter.Config{Prefix: "bench", Capacity: 10 * redisGoroutines})
	if err != nil {
		b.Fatal(err)
	}
	defer lim.Close()
	ctx := context.Background()
	accounts := make([]string, redisGoroutines)
	for g := range accounts {
		accounts[g] = "acct-" + strconv.Itoa(g)
	}
	// Load the scripts into Redis before timing.
	d, err := lim.Acquire(ctx, limits.Request{Account: accounts[0], Plan: limits.PaidPlan, SessionID: "warm-up"})
	if err != nil || !d.Granted() {
		b.Fatalf("warm-up Acquire = %v, %v", d.Refused, err)
	}
	if err := lim.Release(ctx, d.Lease); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	runGoroutines(b, c, h, "pairs/s", func(g int, i int64) error {
		d, err := lim.Acquire(ctx, limits.Request{Account: accounts[g], Plan: limits.PaidPlan, SessionID: "s-" + strconv.FormatInt(i, 10)})
		if err != nil {
			return err
		}
		if !d.Granted() {
			return d.Refused.Err()
		}
		return lim.Release(ctx, d.Lease)
	})
}

// BenchmarkRedisPing is the floor of BenchmarkRedisAcquireRelease: one PING
// per op at 32 goroutines on the same kind of client and server.
func BenchmarkRedisPing(b *testing.B) {
	srv := startRedis(b)
	b.Run("g="+strconv.Itoa(redisGoroutines), func(b *testing.B) {
		c, h := redisClient(srv)
		ctx := context.Background()
		if err := c.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		runGoroutines(b, c, h, "pings/s", func(int, int64) error { return c.Ping(ctx).Err() })
	})
}
