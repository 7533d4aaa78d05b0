package redislimiter_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

func TestMain(m *testing.M) {
	// go-redis logs dial failures through a package logger; the failure
	// tests cause plenty of them on purpose.
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(redistest.ExamplesMain(m, "ExampleLimiter"))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var prefixSeq atomic.Int64

// uniquePrefix gives each limiter of a test run its own key space.
func uniquePrefix() string {
	return "t" + strconv.FormatInt(prefixSeq.Add(1), 10)
}

// rig is a limiter on its own redis-server with a hook that sees every
// command.
type rig struct {
	srv    *redistest.Server
	client *redis.Client // the limiter's client, with the hook
	admin  *redis.Client // another client, for inspecting and pausing
	hook   *countingHook
	lim    *redislimiter.Limiter
	cfg    redislimiter.Config
	clock  *testClock // the limiter's Config.Clock; nil: Redis TIME
}

// newClockedRig is newRig with a testClock as the limiter's clock, for the
// tests that move time.
func newClockedRig(t testing.TB, cfg redislimiter.Config, opt *redis.Options) *rig {
	t.Helper()
	c := &testClock{}
	cfg.Clock = c.Now
	r := newRig(t, cfg, opt)
	r.clock = c
	return r
}

// testClock is a limiter clock (Config.Clock) that tests move: the real
// time plus an offset, or an instant it is frozen at. It is safe for
// concurrent use by multiple goroutines.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
	frozen time.Time // zero: running
}

// Now returns the clock's time.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen
	}
	return time.Now().Add(c.offset)
}

// Freeze stops the clock at now, so that tests compute exact minutes.
func (c *testClock) Freeze(now time.Time) {
	c.mu.Lock()
	c.frozen = now
	c.mu.Unlock()
}

// Advance moves the clock forward by d, frozen or running.
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		c.frozen = c.frozen.Add(d)
		return
	}
	c.offset += d
}

// SetNow makes the running clock read now at this moment.
func (c *testClock) SetNow(now time.Time) {
	c.mu.Lock()
	c.frozen = time.Time{}
	c.offset = time.Until(now)
	c.mu.Unlock()
}

func newRig(t testing.TB, cfg redislimiter.Config, opt *redis.Options) *rig {
	t.Helper()
	srv := redistest.Start(t)
	return newRigOn(t, srv, cfg, opt)
}

func newRigOn(t testing.TB, srv *redistest.Server, cfg redislimiter.Config, opt *redis.Options) *rig {
	t.Helper()
	if opt == nil {
		opt = &redis.Options{ContextTimeoutEnabled: true}
	}
	client := srv.NewClient(opt)
	hook := &countingHook{}
	client.AddHook(hook)
	if cfg.Prefix == "" {
		cfg.Prefix = uniquePrefix()
	}
	lim, err := redislimiter.New(client, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, lim.Close()) })
	return &rig{srv: srv, client: client, admin: srv.Client(), hook: hook, lim: lim, cfg: lim.Config()}
}

func (r *rig) key(kind, account string) string {
	return "{" + r.cfg.Prefix + "}:" + kind + ":" + account
}

// countingHook counts the commands (round trips) the client sends, records
// the keys of script calls and can replay scripts to imitate a retry after a
// lost reply.
type countingHook struct {
	commands  atomic.Int64
	replay    atomic.Bool // run every script twice, returning the second reply
	countOnly bool        // only count (benchmarks): no lock, no copies

	mu   sync.Mutex
	keys [][]string // KEYS[] of each EVAL/EVALSHA
	last []string   // names of the commands sent, in order
}

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.countOnly {
			// Connection handshakes (HELLO, CLIENT SETINFO) of connections
			// the pool opens while a benchmark runs are not the operation's.
			if n := cmd.Name(); n != "hello" && n != "client" {
				h.commands.Add(1)
			}
			return next(ctx, cmd)
		}
		h.commands.Add(1)
		name := strings.ToLower(cmd.Name())
		args := cmd.Args()
		h.mu.Lock()
		h.last = append(h.last, name)
		if (name == "evalsha" || name == "eval") && len(args) >= 3 {
			n := int(toInt64(args[2]))
			ks := make([]string, 0, n)
			for _, k := range args[3 : 3+n] {
				ks = append(ks, k.(string))
			}
			h.keys = append(h.keys, ks)
		}
		h.mu.Unlock()
		if h.replay.Load() && (name == "evalsha" || name == "eval") {
			_ = next(ctx, cmd)
			if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
				return err
			}
			h.commands.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.commands.Add(1) // one round trip for the whole pipeline
		return next(ctx, cmds)
	}
}

func (h *countingHook) reset() {
	h.commands.Store(0)
	h.mu.Lock()
	h.keys = nil
	h.last = nil
	h.mu.Unlock()
}

func (h *countingHook) names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.last...)
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int64:
		return n
	}
	return -1
}

func req(account, sid string, plan limits.Plan) limits.Request {
	return limits.Request{Account: account, Plan: plan, SessionID: sid}
}

// sleepServer makes the server sleep for d with DEBUG SLEEP on a raw
// connection and returns once it no longer answers PING, with a function
// that waits for the sleep to end.
func sleepServer(t *testing.T, addr string, d time.Duration) (wait func()) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = conn.Write([]byte("DEBUG SLEEP " + strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "\r\n"))
	require.NoError(t, err)
	// Probe until a PING goes unanswered for a while: the server sleeps.
	probe := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer probe.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := probe.Ping(ctx).Err()
		cancel()
		if err != nil {
			break
		}
	}
	return func() {
		_ = conn.SetReadDeadline(time.Now().Add(d + 10*time.Second))
		buf := make([]byte, 16)
		_, _ = conn.Read(buf) // +OK once the sleep is over
		conn.Close()
	}
}
