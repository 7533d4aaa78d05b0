package client_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/client"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	testSecret   = []byte("0123456789abcdef0123456789abcdef")
	testAvatars  = session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	testAccounts = server.AccountsByKey{
		"key-acme":    {Name: "acme", Plan: limits.Plan{Name: "pro", MaxConcurrent: 100}},
		"key-globex":  {Name: "globex", Plan: limits.Plan{Name: "pro", MaxConcurrent: 100}},
		"key-limited": {Name: "limited", Plan: limits.Plan{Name: "one", MaxConcurrent: 1}},
	}
)

// backend is a real Server on a real Manager. front, when set, sees every
// request before the server.
type backend struct {
	mgr *session.Manager
	lim *limits.Memory
	// down makes the limiter's next Acquire calls fail as an unreachable
	// backend does, while positive.
	down  atomic.Int32
	srv   *server.Server
	http  *httptest.Server
	front atomic.Pointer[func(http.ResponseWriter, *http.Request) bool]
	close func()
}

// startBackend starts a backend without a testing.T (examples use it).
func startBackend() *backend {
	b := &backend{lim: limits.NewMemory(limits.MemoryConfig{Capacity: 100})}
	var err error
	if b.mgr, err = session.NewManager(session.Config{Limiter: flaky{b.lim, &b.down}, Avatars: testAvatars}); err != nil {
		panic(err)
	}
	if b.srv, err = server.New(server.Config{Manager: b.mgr, Accounts: testAccounts, Avatars: testAvatars, Secret: testSecret}); err != nil {
		panic(err)
	}
	b.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := b.front.Load(); f != nil && (*f)(w, r) {
			return
		}
		b.srv.ServeHTTP(w, r)
	}))
	b.close = func() {
		b.http.Close()
		_ = b.mgr.Close(context.Background())
		_ = b.srv.Close()
		_ = b.lim.Close()
	}
	return b
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := startBackend()
	t.Cleanup(b.close)
	return b
}

// intercept answers the requests f claims (f returns true) before the
// server.
func (b *backend) intercept(f func(http.ResponseWriter, *http.Request) bool) { b.front.Store(&f) }

func (b *backend) sessions(t *testing.T, account string) []session.Info {
	t.Helper()
	infos, err := b.mgr.List(context.Background(), account)
	require.NoError(t, err)
	return infos
}

// counter counts the requests an http.Client sends, per path.
type counter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
	all  int
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = make(map[string]int)
	}
	c.n[r.URL.Path]++
	c.all++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *counter) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all
}

// newClient returns a client of b with apiKey whose requests are counted.
func newClient(t *testing.T, b *backend, apiKey string, opts ...client.Option) (*client.Client, *counter) {
	t.Helper()
	cnt := &counter{next: http.DefaultTransport}
	hc := &http.Client{Transport: cnt, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	c, err := client.New(b.http.URL, append([]client.Option{client.WithAPIKey(apiKey), client.WithHTTPClient(hc)}, opts...)...)
	require.NoError(t, err)
	return c, cnt
}

// dropFirst delivers the first request to path, reads its answer and
// throws it away, as a connection lost on the way back would.
type dropFirst struct {
	next    http.RoundTripper
	path    string
	dropped atomic.Bool
}

func (d *dropFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	if err != nil || r.URL.Path != d.path || !d.dropped.CompareAndSwap(false, true) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, errors.New("connection reset by peer")
}

// next reads the next event (5 s guard).
func next(t *testing.T, events <-chan client.Event) client.Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		require.True(t, ok, "the event channel closed")
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
		return nil
	}
}

// drain reads until the channel closes (5 s guard) and returns the events.
func drain(t *testing.T, events <-chan client.Event) []client.Event {
	t.Helper()
	var out []client.Event
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-timeout:
			t.Fatalf("the event channel did not close; got %v", out)
		}
	}
}

// hijacked remembers the connections its handler hijacks (realtime
// sockets), so that a test can cut them without a close frame.
type hijacked struct {
	mu    sync.Mutex
	conns []net.Conn
}

type hijackWriter struct {
	http.ResponseWriter
	h *hijacked
}

func (w hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.h.mu.Lock()
		w.h.conns = append(w.h.conns, conn)
		w.h.mu.Unlock()
	}
	return conn, rw, err
}

// cut closes every hijacked connection.
func (h *hijacked) cut() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// flaky is a limiter whose Acquire fails with limits.ErrUnavailable while
// its counter is positive (each failure counts it down).
type flaky struct {
	limits.Limiter
	down *atomic.Int32
}

func (f flaky) Acquire(ctx context.Context, r limits.Request) (limits.Decision, error) {
	if f.down.Add(-1) >= 0 {
		return limits.Decision{}, limits.ErrUnavailable
	}
	f.down.Store(0)
	return f.Limiter.Acquire(ctx, r)
}

// connectedSession creates a session of key-acme through a client with
// opts, starts it, opens its socket and reads the first event (connected).
func connectedSession(t *testing.T, b *backend, opts ...client.Option) (*client.Session, <-chan client.Event) {
	t.Helper()
	ctx := t.Context()
	c, _ := newClient(t, b, "key-acme", opts...)
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	events, err := s.Connect(ctx)
	require.NoError(t, err)
	require.Equal(t, client.StateEvent{State: fsm.Connected}, next(t, events))
	return s, events
}
