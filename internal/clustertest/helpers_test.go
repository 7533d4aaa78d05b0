package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/internal/redistest"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// binary builds examples/streaming once per test run (without -race: the
// nodes are the system under test, the test process checks them).
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "clustertest")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "streaming")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/streamsession/streamsession/examples/streaming").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// The service every node of a test reads: capacity 10; four pro accounts
// of 4 sessions each (16 > 10, so both limits refuse under load) and a
// trial account.
const configJSON = `{
  "capacity": 10,
  "plans": {
    "trial": {"max_concurrent": 3, "trial": true, "monthly_minutes": 300, "session_duration_limit": 600},
    "pro":   {"max_concurrent": 4}
  },
  "accounts": [
    {"api_key": "key-a0", "name": "a0", "plan": "pro"},
    {"api_key": "key-a1", "name": "a1", "plan": "pro"},
    {"api_key": "key-a2", "name": "a2", "plan": "pro"},
    {"api_key": "key-a3", "name": "a3", "plan": "pro"},
    {"api_key": "key-trial", "name": "trial", "plan": "trial"}
  ]
}`

const (
	capacity   = 10
	perAccount = 4
	leaseTTL   = 1500 * time.Millisecond
)

var proAccounts = []string{"a0", "a1", "a2", "a3"}

// cluster is a redis-server and the nodes running on it.
type cluster struct {
	t      *testing.T
	redis  *redistest.Server
	admin  *redis.Client
	prefix string
	config string
	nodes  []*node
}

func newCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	bin := binary(t)
	c := &cluster{t: t, redis: redistest.Start(t), prefix: "ct"}
	c.admin = c.redis.Client()
	c.config = filepath.Join(t.TempDir(), "service.json")
	require.NoError(t, os.WriteFile(c.config, []byte(configJSON), 0o600))
	for i := range n {
		c.nodes = append(c.nodes, c.start(bin, fmt.Sprintf("n%d", i), extra...))
	}
	return c
}

// node is one server process.
type node struct {
	name string
	base string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

func (c *cluster) start(bin, name string, extra ...string) *node {
	t := c.t
	t.Helper()
	args := append([]string{
		"-redis", c.redis.Addr(), "-redis-prefix", c.prefix,
		"-addr", "127.0.0.1:0", "-config", c.config,
		"-lease-ttl", leaseTTL.String(),
		"-drain-delay", "0s", // no load balancer to wait for
	}, extra...)
	cmd := exec.Command(bin, args...)
	n := &node{name: name, cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = n.log
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() { n.kill() })
	select {
	case n.base = <-found:
	case <-n.done:
		t.Fatalf("node %s exited before listening:\n%s", name, n.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s not listening after 30s:\n%s", name, n.log)
	}
	return n
}

// kill sends SIGKILL and waits for the process to be reaped.
func (n *node) kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// stop sends SIGTERM and waits for the graceful shutdown.
func (n *node) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, n.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("node %s did not stop:\n%s", n.name, n.log)
	}
	require.Equal(t, 0, n.cmd.ProcessState.ExitCode(), "node %s exit status; its log:\n%s", n.name, n.log)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// answer is one API answer: the HTTP status, the catalog code (100 on
// success) and data.
type answer struct {
	status int
	code   int
	data   json.RawMessage
	err    error
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

// call makes one API call with an API key ("key-...") or a bearer token
// ("sst_...").
func call(base, method, path, auth string, body any) answer {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return answer{err: err}
	}
	if strings.HasPrefix(auth, "sst_") {
		req.Header.Set("Authorization", "Bearer "+auth)
	} else {
		req.Header.Set("X-Api-Key", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	var env struct {
		Code int             `json:"code"`
		Data json.RawMessage `json:"data"`
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{status: resp.StatusCode, err: err}
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return answer{status: resp.StatusCode, err: fmt.Errorf("%s: %w", raw, err)}
	}
	return answer{status: resp.StatusCode, code: env.Code, data: env.Data}
}

func (a answer) String() string {
	return fmt.Sprintf("HTTP %d code %d data %s err %v", a.status, a.code, a.data, a.err)
}

type newData struct {
	SessionID        string `json:"session_id"`
	RealtimeEndpoint string `json:"realtime_endpoint"`
}

func newSession(t *testing.T, n *node, auth string) newData {
	t.Helper()
	a := call(n.base, "POST", "/v1/streaming.new", auth, map[string]any{})
	require.Equal(t, 200, a.status, "streaming.new on %s: %v", n.name, a)
	var d newData
	require.NoError(t, json.Unmarshal(a.data, &d))
	return d
}

func sessionCall(t *testing.T, n *node, path, auth, id string) answer {
	t.Helper()
	return call(n.base, "POST", path, auth, map[string]any{"session_id": id})
}

type listed struct {
	Sessions []struct {
		SessionID string `json:"session_id"`
		Status    string `json:"status"`
	} `json:"sessions"`
}

// list returns session id → status of the account's open sessions, as node
// n lists them.
func list(t *testing.T, n *node, auth string) map[string]string {
	t.Helper()
	a := call(n.base, "GET", "/v1/streaming.list", auth, nil)
	require.Equal(t, 200, a.status, "list on %s: %v", n.name, a)
	var l listed
	require.NoError(t, json.Unmarshal(a.data, &l))
	out := map[string]string{}
	for _, s := range l.Sessions {
		out[s.SessionID] = s.Status
	}
	return out
}

// onNode returns the realtime endpoint of another node: the socket may open
// on any node of the service.
func onNode(t *testing.T, endpoint string, n *node) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	require.NoError(t, err)
	b, err := url.Parse(n.base)
	require.NoError(t, err)
	u.Host = b.Host
	return u.String()
}

// socket is a client's realtime socket, with the states it received.
type socket struct {
	conn   *websocket.Conn
	mu     sync.Mutex
	states []string
	closed chan struct{}
}

func dial(t *testing.T, endpoint string) *socket {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(endpoint, nil)
	require.NoError(t, err)
	resp.Body.Close()
	s := &socket{conn: conn, closed: make(chan struct{})}
	go func() {
		defer close(s.closed)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var m struct {
				Type  string `json:"type"`
				State string `json:"state"`
			}
			if json.Unmarshal(data, &m) == nil && m.Type == "session.state_updated" {
				s.mu.Lock()
				s.states = append(s.states, m.State)
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-s.closed
	})
	return s
}

func (s *socket) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.states...)
}

// waitFor polls cond (the nodes are other processes: there is no clock to
// fake) until it holds, and fails after within.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// liveSlots counts, atomically on Redis's clock, the live slots of the
// service and of each account.
var liveSlots = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('ZCOUNT', k, '(' .. string.format('%d', now), '+inf') end
return out
`)

// slots returns the live slots: [service, a0, a1, a2, a3, trial].
func (c *cluster) slots(ctx context.Context) ([]int64, error) {
	p := "{" + c.prefix + "}:"
	keys := []string{p + "cap"}
	for _, a := range append(append([]string(nil), proAccounts...), "trial") {
		keys = append(keys, p+"slots:"+a)
	}
	return liveSlots.Run(ctx, c.admin, keys).Int64Slice()
}

// slotHeld reports whether the session holds a live slot.
func (c *cluster) slotHeld(t *testing.T, account, id string) bool {
	t.Helper()
	score, err := c.admin.ZScore(context.Background(), "{"+c.prefix+"}:slots:"+account, id).Result()
	if err == redis.Nil {
		return false
	}
	require.NoError(t, err)
	now, err := c.admin.Time(context.Background()).Result()
	require.NoError(t, err)
	return int64(score) > now.UnixMilli()
}
