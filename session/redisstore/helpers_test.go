package redisstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/session"
)

func TestMain(m *testing.M) {
	// go-redis logs dial failures through a package logger; the failure
	// tests cause them on purpose.
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(redistest.ExamplesMain(m, "Example"))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// t0 is the tests' fixed "now": record times are the caller's, so Due
// works on any instant.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newRecord(id string) session.Record {
	return session.Record{Info: session.Info{ID: id, Account: "acme", State: fsm.New, Epoch: 1, CreatedAt: t0, IdleTimeout: time.Minute,
		DurationLimit: 10 * time.Minute}, JoinTimeout: 5 * time.Minute, Retention: 10 * time.Minute}
}

// eventLog collects what a Store delivers to its Manager.
type eventLog struct {
	mu     sync.Mutex
	events []session.Event
}

func (l *eventLog) add(e session.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) snapshot() []session.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]session.Event(nil), l.events...)
}

func (l *eventLog) of(id string) []session.Event {
	var out []session.Event
	for _, e := range l.snapshot() {
		if e.SessionID == id {
			out = append(out, e)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes: the store's
// events and heartbeats travel through a real Redis, so there is no fake
// clock to advance.
func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// node is one Store (one server node) watching into an eventLog.
type node struct {
	*Store
	log *eventLog
}

// newNode returns a watching Store on srv with cfg, closed at the end of
// the test.
func newNode(t testing.TB, srv *redistest.Server, cfg Config) *node {
	t.Helper()
	s, err := New(srv.Client(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	n := &node{Store: s, log: &eventLog{}}
	require.NoError(t, s.Watch(n.log.add))
	return n
}

// keys returns the store's keys in Redis.
func keys(t testing.TB, c *redis.Client, prefix string) []string {
	t.Helper()
	ks, err := c.Keys(context.Background(), "{"+prefix+"}:s:*").Result()
	require.NoError(t, err)
	return ks
}
