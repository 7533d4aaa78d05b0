package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/redisstore"
)

// Idle cost of the multi-node mode: sessions open through two nodes, then
// nothing happens to them while Redis counts the commands it serves.
const (
	idleSessions = 10_000
	idleNodes    = 2
	// idleWindowDefault is the counting window: three rounds of the lease
	// renewals an older version made (every 10 s for the default 30 s
	// lease TTL), so that per-session work is counted whole. The
	// REDIS_IDLE_WINDOW environment variable (a time.Duration) changes it.
	idleWindowDefault = 30 * time.Second
	// idleSettle is the wait between the last session opened and the
	// window, so that the opening's own traffic is over.
	idleSettle = 3 * time.Second
)

// BenchmarkRedisIdle opens 10,000 sessions through two nodes (two
// Managers, each with a Redis session store and a Redis limiter on a
// client of its own, as two processes of examples/streaming with -redis
// would), a quarter in each of new, connecting, connected and connected
// without an idle timeout, with the default store and limiter settings
// and a join timeout of an hour so that none closes during the count.
// Then, idle, it reads INFO commandstats after a CONFIG RESETSTAT and a
// window (REDIS_IDLE_WINDOW, default 30 s), and reports Redis commands per
// second (cmds/s), the commands counted inside scripts included; the
// commands of the measurement itself are left out. Goal: ≤ 50 cmds/s, that
// is O(nodes), not O(sessions). One op is the whole measurement: run it
// with -benchtime 1x.
func BenchmarkRedisIdle(b *testing.B) {
	window := idleWindowDefault
	if v := os.Getenv("REDIS_IDLE_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("REDIS_IDLE_WINDOW=%q: want a positive duration", v)
		}
		window = d
	}
	srv := startRedis(b)
	b.Run("sessions="+strconv.Itoa(idleSessions), func(b *testing.B) {
		for range b.N {
			perSec, stats := idleCost(b, srv, window)
			b.ReportMetric(perSec, "cmds/s")
			b.Logf("%d sessions on %d nodes, idle for %v: %.1f Redis commands/s: %s", idleSessions, idleNodes, window, perSec, stats)
		}
	})
}

// idleCost runs one measurement on a flushed srv and returns the commands
// per second and their breakdown by command.
func idleCost(b *testing.B, srv *redistest.Server, window time.Duration) (float64, string) {
	b.Helper()
	b.StopTimer()
	ctx := context.Background()
	admin := srv.Client()
	if err := admin.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	var (
		managers []*session.Manager
		closers  []func()
	)
	defer func() {
		for _, f := range slices.Backward(closers) {
			f()
		}
	}()
	for range idleNodes {
		c := srv.NewClient(&redis.Options{ContextTimeoutEnabled: true, PoolSize: 32})
		closers = append(closers, func() { _ = c.Close() })
		store, err := redisstore.New(c, redisstore.Config{})
		if err != nil {
			b.Fatal(err)
		}
		closers = append(closers, func() { _ = store.Close() })
		lim, err := redislimiter.New(c, redislimiter.Config{})
		if err != nil {
			b.Fatal(err)
		}
		closers = append(closers, func() { _ = lim.Close() })
		m, err := session.NewManager(session.Config{
			Limiter:     lim,
			Avatars:     session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
			Store:       store,
			JoinTimeout: time.Hour,
		})
		if err != nil {
			b.Fatal(err)
		}
		closers = append(closers, func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if err := m.Close(cctx); err != nil {
				b.Errorf("Manager.Close: %v", err)
			}
		})
		managers = append(managers, m)
	}

	// Open the sessions from 32 goroutines, through both nodes in turn,
	// over 100 paid accounts of 100 sessions each.
	const accounts = idleSessions / 100
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		openErr error
	)
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= idleSessions {
					return
				}
				if err := openIdle(ctx, managers[i%idleNodes], managers[(i+1)%idleNodes], i, accounts); err != nil {
					errOnce.Do(func() { openErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if openErr != nil {
		b.Fatal(openErr)
	}

	time.Sleep(idleSettle)
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	time.Sleep(window)
	info, err := admin.Info(ctx, "commandstats").Result()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	calls := commandCalls(info)
	// The measurement's own commands.
	delete(calls, "config|resetstat")
	delete(calls, "info")
	var total int64
	names := make([]string, 0, len(calls))
	for name, n := range calls {
		total += n
		names = append(names, name)
	}
	slices.SortFunc(names, func(x, y string) int { return int(calls[y] - calls[x]) })
	var sb strings.Builder
	for i, name := range names {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s %.1f/s", name, float64(calls[name])/window.Seconds())
	}

	// Every session is still open: the count was of idle sessions.
	open := 0
	for a := range accounts {
		list, err := managers[0].List(ctx, "acct-"+strconv.Itoa(a))
		if err != nil {
			b.Fatal(err)
		}
		open += len(list)
	}
	if open != idleSessions {
		b.Fatalf("%d sessions open after the window, want %d", open, idleSessions)
	}
	return float64(total) / window.Seconds(), sb.String()
}

// openIdle opens session i through node a (started and joined through b):
// new, connecting, connected, or connected without an idle timeout, by
// i mod 4.
func openIdle(ctx context.Context, a, b *session.Manager, i, accounts int) error {
	acct := session.Account{Name: "acct-" + strconv.Itoa(i%accounts), Plan: limits.PaidPlan}
	opts := session.CreateOptions{IdleTimeout: session.MaxIdleTimeout, DisableIdleTimeout: i%4 == 3}
	s, err := a.Create(ctx, acct, opts)
	if err != nil {
		return fmt.Errorf("session %d: create: %w", i, err)
	}
	if i%4 == 0 {
		return nil
	}
	if _, err := b.Start(ctx, acct.Name, s.ID); err != nil {
		return fmt.Errorf("session %d: start: %w", i, err)
	}
	if i%4 == 1 {
		return nil
	}
	if _, err := b.Join(ctx, acct.Name, s.ID); err != nil {
		return fmt.Errorf("session %d: join: %w", i, err)
	}
	return nil
}

// commandCalls reads the calls of each command from INFO commandstats
// ("cmdstat_<name>:calls=N,usec=..."), by command name.
func commandCalls(info string) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err == nil {
					out[strings.TrimPrefix(name, "cmdstat_")] = n
				}
			}
		}
	}
	return out
}
