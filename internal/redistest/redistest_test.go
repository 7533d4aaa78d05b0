package redistest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStartAnswersPing(t *testing.T) {
	s := Start(t)
	c := s.Client()
	got, err := c.Ping(context.Background()).Result()
	require.NoError(t, err)
	assert.Equal(t, "PONG", got)
	assert.True(t, strings.HasPrefix(s.Addr(), "127.0.0.1:"), "Addr() = %q, want a loopback address", s.Addr())

	// The configuration Start promises: nothing persisted, DEBUG allowed locally.
	cfg, err := c.ConfigGet(context.Background(), "*").Result()
	require.NoError(t, err)
	for _, tc := range []struct{ key, want string }{
		{"save", ""},
		{"appendonly", "no"},
		{"enable-debug-command", "local"},
		{"bind", "127.0.0.1"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			assert.Equal(t, tc.want, cfg[tc.key])
		})
	}
	require.NoError(t, c.Do(context.Background(), "DEBUG", "SLEEP", "0").Err())
}

func TestKillAndRestartKeepTheAddress(t *testing.T) {
	s := Start(t)
	// No retries: a PING to a killed server fails at once.
	c := s.NewClient(&redis.Options{MaxRetries: -1})
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	addr := s.Addr()

	s.Kill()
	assert.Error(t, c.Ping(ctx).Err(), "PING after Kill")
	s.Kill() // killing a killed server does nothing

	s.Restart()
	assert.Equal(t, addr, s.Addr())
	require.NoError(t, c.Ping(ctx).Err(), "PING after Restart")
	_, err := c.Get(ctx, "k").Result()
	assert.ErrorIs(t, err, redis.Nil, "a restarted server starts empty")

	s.Restart() // restart of a running server replaces it
	require.NoError(t, c.Ping(ctx).Err())
}

func TestCleanupReapsTheProcess(t *testing.T) {
	var pid int
	t.Run("server", func(t *testing.T) {
		s := Start(t)
		s.mu.Lock()
		pid = s.proc.cmd.Process.Pid
		s.mu.Unlock()
		require.NoError(t, syscall.Kill(pid, 0), "server process alive during the test")
	})
	// The cleanup waited for the process, so it is neither running nor a zombie.
	assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestTwoServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	assert.NotEqual(t, a.Addr(), b.Addr())
	ctx := context.Background()
	require.NoError(t, a.Client().Set(ctx, "k", "a", 0).Err())
	_, err := b.Client().Get(ctx, "k").Result()
	assert.ErrorIs(t, err, redis.Nil)
}

// recordingTB stands in for a *testing.T to observe Start's Skip or Fatal.
type recordingTB struct {
	testing.TB
	mu      sync.Mutex
	skipped string
	fatal   string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skip(args ...any) {
	r.mu.Lock()
	r.skipped = fmt.Sprint(args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recordingTB) Fatal(args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprint(args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func TestMissingBinary(t *testing.T) {
	starts := []struct {
		name  string
		start func(testing.TB)
	}{
		{"Start", func(tb testing.TB) { Start(tb) }},
		{"StartCluster", func(tb testing.TB) { StartCluster(tb, 3) }},
	}
	for _, st := range starts {
		for _, tc := range []struct {
			name      string
			ci        string
			wantSkip  bool
			wantFatal bool
		}{
			{name: "laptop skips", ci: "", wantSkip: true},
			{name: "CI fails", ci: "true", wantFatal: true},
		} {
			t.Run(st.name+"/"+tc.name, func(t *testing.T) {
				t.Setenv("PATH", t.TempDir())
				t.Setenv("CI", tc.ci)
				r := &recordingTB{TB: t}
				done := make(chan struct{})
				go func() {
					defer close(done)
					st.start(r)
					t.Errorf("%s returned without redis-server on PATH", st.name)
				}()
				<-done
				assert.Equal(t, tc.wantSkip, r.skipped != "", "skipped: %q", r.skipped)
				assert.Equal(t, tc.wantFatal, r.fatal != "", "fatal: %q", r.fatal)
				assert.Contains(t, r.skipped+r.fatal, "apt-get install redis-server")
			})
		}
	}
}

// Start and StartCluster take a testing.TB, so benchmarks start servers the
// same way.
var (
	_ = func(b *testing.B) *Server { return Start(b) }
	_ = func(b *testing.B) *Cluster { return StartCluster(b, 3) }
)
