package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
)

// The service behind the load balancer: room for 60 sessions, two accounts
// that may each take all of it, so that the capacity is the limit that
// refuses (10014).
const (
	lbCapacity   = 60
	lbConfigJSON = `{
  "capacity": 60,
  "plans": {"pro": {"max_concurrent": 60}},
  "accounts": [
    {"api_key": "key-r0", "name": "r0", "plan": "pro"},
    {"api_key": "key-r1", "name": "r1", "plan": "pro"}
  ]
}`
)

var lbKeys = []string{"key-r0", "key-r1"}

// lbCluster is a cluster whose nodes listen on fixed ports (so that a
// restarted node comes back where haproxy expects it), behind haproxy.
type lbCluster struct {
	*cluster
	lb    *haproxy
	ports []int
	extra []string
}

func newLBCluster(t *testing.T, n int, extra ...string) *lbCluster {
	t.Helper()
	lookHAProxy(t) // skip (or fail in CI) before starting anything
	c := &cluster{t: t, redis: redistest.Start(t), prefix: "lb"}
	c.admin = c.redis.Client()
	c.config = filepath.Join(t.TempDir(), "service.json")
	require.NoError(t, os.WriteFile(c.config, []byte(lbConfigJSON), 0o600))
	// The nodes are reached through haproxy: they build their public URLs
	// (realtime_endpoint) on its address.
	lbPort := freePort(t)
	lc := &lbCluster{cluster: c, extra: append([]string{"-public-url", fmt.Sprintf("http://127.0.0.1:%d", lbPort)}, extra...)}
	var addrs []string
	for i := range n {
		lc.ports = append(lc.ports, freePort(t))
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", lc.ports[i]))
		c.nodes = append(c.nodes, lc.startNode(i))
	}
	lc.lb = startHAProxy(t, lbPort, addrs)
	return lc
}

func (lc *lbCluster) startNode(i int) *node {
	args := append([]string{
		"-addr", fmt.Sprintf("127.0.0.1:%d", lc.ports[i]),
		"-drain-delay", "300ms", "-drain-timeout", "10s", "-request-grace", "2s",
	}, lc.extra...)
	n := lc.start(binary(lc.t), fmt.Sprintf("n%d", i), args...)
	waitFor(lc.t, n.name+" ready", 10*time.Second, func() bool {
		resp, err := http.Get(n.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

// restart stops node i with SIGTERM (it must exit 0), then starts it again
// on its port.
func (lc *lbCluster) restart(i int) {
	lc.t.Helper()
	old := lc.nodes[i]
	old.stop(lc.t)
	logged := old.log.String()
	assert.Contains(lc.t, logged, "msg=draining", "%s drains", old.name)
	assert.NotContains(lc.t, logged, "to=closing", "no session closes (a node's log sees the whole cluster's transitions)")
	lc.nodes[i] = lc.startNode(i)
}

// liveCapacity counts the live slots of the whole service.
func (lc *lbCluster) liveCapacity(t *testing.T) int64 {
	t.Helper()
	n, err := liveSlots.Run(context.Background(), lc.admin, []string{"{" + lc.prefix + "}:cap"}).Int64Slice()
	require.NoError(t, err)
	return n[0]
}

// settle is how long the tests wait, once the disruption is over, before
// they check the sessions: longer than a slot's lease (the cluster's
// -lease-ttl), so that a slot left to lapse would show.
const settle = 2 * leaseTTL

// failures collects what went wrong for a client of the load balancer.
type failures struct {
	mu   sync.Mutex
	list []string
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, fmt.Sprintf(format, args...))
}

func (f *failures) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.list...)
}

// lbClient is one session's client: it keeps the session's realtime socket
// open through the load balancer, reopening it whenever the server closes
// it, and measures each reopening from the close to the first
// session.state_updated on the new socket.
type lbClient struct {
	id, auth, endpoint string
	fail               *failures
	events             chan wsMessage
	done               chan struct{}

	mu         sync.Mutex
	conn       *websocket.Conn
	stopped    bool
	connected  bool
	closedAt   time.Time
	closeCodes []int
	reconnects []time.Duration
}

var lbDialer = websocket.Dialer{HandshakeTimeout: 5 * time.Second}

func startLBClient(id, auth, endpoint string, fail *failures) *lbClient {
	c := &lbClient{id: id, auth: auth, endpoint: endpoint, fail: fail,
		events: make(chan wsMessage, 16), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *lbClient) run() {
	defer close(c.done)
	for {
		conn, resp, err := lbDialer.Dial(c.endpoint, nil)
		if resp != nil {
			resp.Body.Close()
		}
		c.mu.Lock()
		if c.stopped {
			c.mu.Unlock()
			if conn != nil {
				conn.Close()
			}
			return
		}
		if err != nil {
			c.mu.Unlock()
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			c.fail.add("session %.8s: socket dial through haproxy: %v (HTTP %d)", c.id, err, status)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c.conn = conn
		c.mu.Unlock()
		c.read(conn)
	}
}

// read serves one socket until it closes.
func (c *lbClient) read(conn *websocket.Conn) {
	defer conn.Close()
	first := true
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			code := -1
			if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
				code = ce.Code
			}
			c.mu.Lock()
			if !c.stopped {
				c.connected = false
				c.closedAt = time.Now()
				c.closeCodes = append(c.closeCodes, code)
			}
			c.mu.Unlock()
			return
		}
		var m wsMessage
		if err := json.Unmarshal(data, &m); err != nil {
			c.fail.add("session %.8s: bad message %q", c.id, data)
			continue
		}
		if m.Type != "session.state_updated" {
			select {
			case c.events <- m:
			default:
			}
			continue
		}
		if !first || m.State != "connected" {
			c.fail.add("session %.8s: state %s (first message of its socket: %v)", c.id, m.State, first)
		}
		if first {
			first = false
			c.mu.Lock()
			if !c.closedAt.IsZero() {
				c.reconnects = append(c.reconnects, time.Since(c.closedAt))
			}
			c.connected = true
			c.mu.Unlock()
		}
	}
}

func (c *lbClient) isConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// stop ends the client: its socket is closed by the client.
func (c *lbClient) stop() {
	c.mu.Lock()
	c.stopped = true
	if c.conn != nil {
		c.conn.Close()
	}
	c.mu.Unlock()
	<-c.done
}

// apiLoad calls GET /v1/streaming.list through the load balancer without
// pause until stopped, and reports every call that failed.
func apiLoad(base string, fail *failures) (stop func() int) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	calls := 0
	for w := range 2 {
		wg.Go(func() {
			for {
				select {
				case <-quit:
					return
				default:
				}
				a := call(base, "GET", "/v1/streaming.list", lbKeys[w], nil)
				if a.err != nil || a.status != http.StatusOK {
					fail.add("streaming.list through haproxy: %v", a)
				}
				mu.Lock()
				calls++
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	return func() int {
		close(quit)
		wg.Wait()
		return calls
	}
}

// lbRun is a test behind the load balancer: sessions with open sockets,
// clients that reopen them, and a steady flow of API calls.
type lbRun struct {
	t       *testing.T
	lc      *lbCluster
	fail    *failures
	clients []*lbClient
	load    func() int
}

// startSessions creates and starts n sessions through the load balancer
// and opens their sockets, and starts the API load.
func startSessions(t *testing.T, lc *lbCluster, n int) *lbRun {
	t.Helper()
	r := &lbRun{t: t, lc: lc, fail: &failures{}}
	base := lc.lb.base
	for i := range n {
		auth := lbKeys[i%len(lbKeys)]
		a := call(base, "POST", "/v1/streaming.new", auth, map[string]any{})
		require.Equal(t, 200, a.status, "streaming.new through haproxy: %v", a)
		var d newData
		require.NoError(t, json.Unmarshal(a.data, &d))
		require.Equal(t, 200, call(base, "POST", "/v1/streaming.start", auth, map[string]any{"session_id": d.SessionID}).status)
		// The nodes' public URL is haproxy's: the endpoint goes through it.
		endpoint, err := url.Parse(d.RealtimeEndpoint)
		require.NoError(t, err)
		require.Equal(t, base[len("http://"):], endpoint.Host, "realtime_endpoint goes through haproxy: %s", d.RealtimeEndpoint)
		r.clients = append(r.clients, startLBClient(d.SessionID, auth, endpoint.String(), r.fail))
	}
	t.Cleanup(func() {
		for _, c := range r.clients {
			c.stop()
		}
	})
	r.waitConnected("every socket open")
	r.load = apiLoad(base, r.fail)
	t.Cleanup(func() { r.stopLoad() })
	return r
}

func (r *lbRun) stopLoad() int {
	if r.load == nil {
		return 0
	}
	n := r.load()
	r.load = nil
	return n
}

func (r *lbRun) waitConnected(what string) {
	r.t.Helper()
	waitFor(r.t, what, 10*time.Second, func() bool {
		for _, c := range r.clients {
			if !c.isConnected() {
				return false
			}
		}
		return true
	})
}

// reconnects returns every reopening's duration, sorted, and the close
// codes the clients received.
func (r *lbRun) reconnects() ([]time.Duration, []int) {
	var ds []time.Duration
	var codes []int
	for _, c := range r.clients {
		c.mu.Lock()
		ds = append(ds, c.reconnects...)
		codes = append(codes, c.closeCodes...)
		c.mu.Unlock()
	}
	slices.Sort(ds)
	return ds, codes
}

// checkServiceIntact checks, through the load balancer, that every session
// is still open and connected, that each holds its slot and no more slots
// are held, that a task on each reaches its socket as avatar_start_talking
// and avatar_stop_talking, and that once the sessions are stopped the whole
// capacity can be taken again.
func (r *lbRun) checkServiceIntact() {
	t, base := r.t, r.lc.lb.base
	t.Helper()
	listedConnected := 0
	for _, key := range lbKeys {
		a := call(base, "GET", "/v1/streaming.list", key, nil)
		require.Equal(t, 200, a.status, "%v", a)
		var l listed
		require.NoError(t, json.Unmarshal(a.data, &l))
		for _, s := range l.Sessions {
			if s.Status == "connected" {
				listedConnected++
			}
		}
	}
	assert.Equal(t, len(r.clients), listedConnected, "every session still open and connected")
	assert.EqualValues(t, len(r.clients), r.lc.liveCapacity(t), "one live slot per session, no more")

	var wg sync.WaitGroup
	for _, c := range r.clients {
		wg.Go(func() {
			a := call(base, "POST", "/v1/streaming.task", c.auth, map[string]any{"session_id": c.id, "text": "hi there"})
			if a.status != 200 {
				r.fail.add("streaming.task through haproxy: %v", a)
				return
			}
			var ans taskAnswer
			_ = json.Unmarshal(a.data, &ans)
			for _, want := range []string{"avatar_start_talking", "avatar_stop_talking"} {
				select {
				case m := <-c.events:
					if m.Type != want || m.TaskID != ans.TaskID {
						r.fail.add("session %.8s: got %s of task %s, want %s of %s", c.id, m.Type, m.TaskID, want, ans.TaskID)
					}
				case <-time.After(10 * time.Second):
					r.fail.add("session %.8s: no %s", c.id, want)
				}
			}
		})
	}
	wg.Wait()

	for _, c := range r.clients {
		c.stop()
	}
	for _, c := range r.clients {
		a := call(base, "POST", "/v1/streaming.stop", c.auth, map[string]any{"session_id": c.id})
		require.Equal(t, 200, a.status, "streaming.stop through haproxy: %v", a)
	}
	assert.EqualValues(t, 0, r.lc.liveCapacity(t), "every slot free after the stops")
	for i := range lbCapacity {
		a := call(base, "POST", "/v1/streaming.new", lbKeys[i%len(lbKeys)], map[string]any{})
		require.Equal(t, 200, a.status, "session %d of the capacity: %v", i+1, a)
	}
	a := call(base, "POST", "/v1/streaming.new", lbKeys[0], map[string]any{})
	assert.Equal(t, 429, a.status, "%v", a)
	assert.Equal(t, 10014, a.code, "the capacity, whole again, is the limit")
}

// TestRollingRestartBehindHAProxy restarts every node of three, one after
// another and twice, behind haproxy while 50 sessions have their sockets
// open: each node drains on SIGTERM (readyz 503, its sockets closed with
// 1012), exits 0 and comes back; the clients reopen their sockets through
// haproxy. No session is lost or changes state, every socket is back
// within 2 s, no request through haproxy fails, and the service is whole
// afterwards.
func TestRollingRestartBehindHAProxy(t *testing.T) {
	const sessions = 50
	lc := newLBCluster(t, 3)
	r := startSessions(t, lc, sessions)

	start := time.Now()
	for round := range 2 {
		for i := range lc.nodes {
			lc.restart(i)
			r.waitConnected(fmt.Sprintf("every socket back after the restart of n%d (round %d)", i, round+1))
		}
	}
	rolled := time.Since(start)
	time.Sleep(settle) // a slot that lapsed would now show
	calls := r.stopLoad()

	ds, codes := r.reconnects()
	require.NotEmpty(t, ds)
	for _, code := range codes {
		assert.Equal(t, websocket.CloseServiceRestart, code, "sockets are closed with 1012 only")
	}
	assert.Len(t, ds, len(codes), "every closed socket came back")
	p50, maxD := ds[len(ds)/2], ds[len(ds)-1]
	t.Logf("6 restarts in %v: %d sockets closed with 1012 and reopened; reconnect p50 %v, max %v; %d API calls through haproxy meanwhile",
		rolled.Round(time.Millisecond), len(ds), p50.Round(time.Millisecond), maxD.Round(time.Millisecond), calls)
	assert.Less(t, maxD, 2*time.Second, "every socket back within 2s of its close")

	r.checkServiceIntact()
	assert.Empty(t, r.fail.all(), "no request through haproxy failed, no session changed state")
	for _, n := range lc.nodes {
		assert.NotContains(t, n.log.String(), "to=closing reason=node_lost")
	}
}

// TestNodeKilledBehindHAProxy kills one node of three with SIGKILL while
// 30 sessions have their sockets open through haproxy: the sockets it held
// drop, their clients reopen them on the other nodes, and no session is
// closed: sessions end only by stop and the timers.
func TestNodeKilledBehindHAProxy(t *testing.T) {
	const sessions = 30
	lc := newLBCluster(t, 3)
	r := startSessions(t, lc, sessions)

	lc.nodes[1].kill()
	r.waitConnected("every socket back after the kill")
	time.Sleep(settle) // a slot that lapsed would now show
	r.stopLoad()
	ds, _ := r.reconnects()
	require.NotEmpty(t, ds, "the killed node held sockets")
	t.Logf("after SIGKILL of n1: %d sockets reopened; reconnect p50 %v, max %v",
		len(ds), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	assert.Less(t, ds[len(ds)-1], 2*time.Second)
	r.checkServiceIntact()
	assert.Empty(t, r.fail.all())
}
