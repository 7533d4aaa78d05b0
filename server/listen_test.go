package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/session"
)

// serveLimited serves h with NewHTTPServer on a ConnLimiter of maxConns
// over a loopback listener.
func serveLimited(t *testing.T, h http.Handler, maxConns int, opts ...ConnLimiterOption) (*ConnLimiter, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lim := LimitConnections(ln, maxConns, opts...)
	hs := NewHTTPServer(h, HTTPConfig{Limiter: lim})
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(lim) }()
	t.Cleanup(func() {
		require.NoError(t, hs.Close())
		<-done
	})
	return lim, ln.Addr().String()
}

// keepAlive is a client connection that sent one request, read its
// answer and stays open.
type keepAlive struct {
	conn net.Conn
	br   *bufio.Reader
}

// get sends GET path on a new connection to addr and reads the answer,
// leaving the connection open (keep-alive).
func get(t *testing.T, addr, path string) (*keepAlive, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	k := &keepAlive{conn: conn, br: bufio.NewReader(conn)}
	return k, k.get(t, path)
}

func (k *keepAlive) get(t *testing.T, path string) *http.Response {
	t.Helper()
	k.conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := fmt.Fprintf(k.conn, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path)
	require.NoError(t, err)
	resp, err := http.ReadResponse(k.br, nil)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// alive reports whether the server still holds k's connection open.
func (k *keepAlive) alive() bool {
	k.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := k.br.Peek(1)
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}

// TestConnLimiterShedsIdleFirst: with the cap held by idle keep-alive
// connections, a new client is served at once, the oldest idle connection
// is the one shed, and a connection with a request in flight is never shed.
func TestConnLimiterShedsIdleFirst(t *testing.T) {
	const maxConns = 20
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/", okHandler())
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "slow")
	})
	lim, addr := serveLimited(t, mux, maxConns, ShedAfter(0))

	// One request in flight.
	busy, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer busy.Close()
	_, err = io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return lim.Stats().Open == 1 && lim.Stats().Idle == 0 },
		5*time.Second, time.Millisecond)

	// settled waits until n connections are idle: the server marks a
	// connection idle just after its answer is sent.
	settled := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool { return lim.Stats().Idle == n }, 5*time.Second, time.Millisecond)
	}
	idle := make([]*keepAlive, 0, maxConns-1)
	for i := range maxConns - 1 {
		k, resp := get(t, addr, "/healthz")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		idle = append(idle, k)
		settled(i + 1)
	}
	assert.Equal(t, ConnStats{Open: maxConns, Idle: maxConns - 1}, lim.Stats())

	for i := range 5 {
		start := time.Now()
		_, resp := get(t, addr, "/healthz")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Less(t, time.Since(start), 2*time.Second)
		settled(maxConns - 1)
		assert.False(t, idle[i].alive(), "the oldest idle connection is shed first")
		assert.True(t, idle[i+1].alive())
	}
	st := lim.Stats()
	assert.Equal(t, uint64(5), st.Shed)
	assert.LessOrEqual(t, st.Open, maxConns)

	close(release)
	busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	require.NoError(t, err, "the connection with a request in flight was not shed")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestConnLimiterWaitsWhenAllBusy: at the cap with every connection
// carrying a request, a new connection waits (it is not served past the
// cap) until one of them is answered and turns idle.
func TestConnLimiterWaitsWhenAllBusy(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/", okHandler())
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "slow")
	})
	lim, addr := serveLimited(t, mux, 2, ShedAfter(0))
	for range 2 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return lim.Stats() == ConnStats{Open: 2} }, 5*time.Second, time.Millisecond)

	answered := make(chan int, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/healthz")
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	select {
	case <-answered:
		t.Fatal("a connection was served past the cap")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	assert.Equal(t, http.StatusOK, <-answered)
	assert.LessOrEqual(t, lim.Stats().Open, 2)
}

// TestConnLimiterClose: Close ends an Accept waiting for room, and the
// slots of connections closed twice are freed once.
func TestConnLimiterClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lim := LimitConnections(ln, 1)
	accepted := make(chan error, 2)
	go func() {
		for {
			c, err := lim.Accept()
			accepted <- err
			if err != nil {
				return
			}
			lim.ConnState(c, http.StateActive) // busy: not sheddable
			defer c.Close()
		}
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c1.Close()
	require.NoError(t, <-accepted)
	c2, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c2.Close()
	require.Eventually(t, func() bool { return lim.Stats().Open == 1 }, time.Second, time.Millisecond)
	require.NoError(t, lim.Close())
	assert.ErrorIs(t, <-accepted, net.ErrClosed)
}

// TestNewHTTPServerBounds: the defaults, and a header over MaxHeaderBytes
// answers 431.
func TestNewHTTPServerBounds(t *testing.T) {
	hs := NewHTTPServer(okHandler(), HTTPConfig{})
	assert.Equal(t, DefaultMaxHeaderBytes, hs.MaxHeaderBytes)
	assert.Equal(t, DefaultReadHeaderTimeout, hs.ReadHeaderTimeout)
	assert.Equal(t, DefaultIdleTimeout, hs.IdleTimeout)

	_, addr := serveLimited(t, okHandler(), 10)
	for _, tc := range []struct {
		size int
		want int
	}{{1 << 10, http.StatusOK}, {DefaultMaxHeaderBytes + 8<<10, http.StatusRequestHeaderFieldsTooLarge}} {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: test\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", tc.size))
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		assert.Equal(t, tc.want, resp.StatusCode, "header of %d bytes", tc.size)
	}
}

// TestNewHTTPServerChainsConnState: the Limiter's hook and ConnState both
// see every state change.
func TestNewHTTPServerChainsConnState(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lim := LimitConnections(ln, 10)
	var mu sync.Mutex
	var seen []http.ConnState
	hs := NewHTTPServer(okHandler(), HTTPConfig{Limiter: lim, ConnState: func(_ net.Conn, st http.ConnState) {
		mu.Lock()
		seen = append(seen, st)
		mu.Unlock()
	}})
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(lim) }()
	defer func() { hs.Close(); <-done }()
	k, resp := get(t, ln.Addr().String(), "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool { return lim.Stats() == ConnStats{Open: 1, Idle: 1} }, time.Second, time.Millisecond)
	k.conn.Close()
	require.Eventually(t, func() bool { return lim.Stats().Open == 0 }, time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateClosed}, seen)
}

func TestDefaultMaxConnections(t *testing.T) {
	var rl syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl))
	want := 50_000
	if rl.Cur < 62_500 {
		want = int(rl.Cur * 80 / 100)
	}
	assert.Equal(t, want, DefaultMaxConnections())
}

// floodFDLimit is the file limit of the flooded child process: 1,024, or
// STREAMSESSION_FLOOD_FDS to rerun the flood at another scale by hand
// (STREAMSESSION_FLOOD_FDS=20000 STREAMSESSION_FLOOD_CONNS=19000 is the
// production figure; the test process needs more files than the flood).
var floodFDLimit = envInt("STREAMSESSION_FLOOD_FDS", 1024)

// floodConns is how many idle connections the flood opens: more than the
// child has files, or STREAMSESSION_FLOOD_CONNS.
var floodConns = envInt("STREAMSESSION_FLOOD_CONNS", floodFDLimit+100)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestFloodChild is the node of TestFloods, run in a child process with
// a file limit of floodFDLimit: a Server's API and probes behind
// NewHTTPServer on a ConnLimiter with the default cap. It prints its
// address and pid, and exits when its stdin closes.
func TestFloodChild(t *testing.T) {
	if os.Getenv("STREAMSESSION_FLOOD_CHILD") != "1" {
		t.Skip("run by TestFloods")
	}
	rl := syscall.Rlimit{Cur: uint64(floodFDLimit), Max: uint64(floodFDLimit)}
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl))
	mgr, err := session.NewManager(session.Config{Limiter: newFakeLimiter(100), Avatars: testAvatars})
	require.NoError(t, err)
	srv, err := New(Config{Manager: mgr, Accounts: testAccts, Avatars: testAvatars, Secret: testSecret})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/v1/", srv)
	mux.Handle(PathHealthz, srv.Health())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lim := LimitConnections(ln, 0)
	hs := NewHTTPServer(mux, HTTPConfig{Limiter: lim})
	go hs.Serve(lim)
	var peak atomic.Uint64
	go func() {
		for {
			peak.Store(max(peak.Load(), goMemory()))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	fmt.Printf("addr %s max %d\n", ln.Addr(), lim.Max())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() { // "mem": Go's memory now, and its peak since the last "mem"
		now := goMemory()
		fmt.Printf("peak %d now %d\n", max(peak.Swap(now), now), now)
	}
	os.Exit(0) // the parent is gone: no cleanup to wait for
}

// goMemory is the memory the Go runtime holds from the system and has not
// returned: what RSS counts of it, without the race detector's own.
func goMemory() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}

// child is a running TestFloodChild.
type child struct {
	cmd  *exec.Cmd
	in   io.Writer
	out  *bufio.Reader
	addr string
	max  int
}

// goMem returns the child's Go memory now and its peak since the last
// call, in MiB.
func (c *child) goMem(t *testing.T) (now, peak uint64) {
	t.Helper()
	_, err := io.WriteString(c.in, "mem\n")
	require.NoError(t, err)
	line, err := c.out.ReadString('\n')
	require.NoError(t, err)
	_, err = fmt.Sscanf(line, "peak %d now %d", &peak, &now)
	require.NoError(t, err, "child said %q", line)
	return now >> 20, peak >> 20
}

func startFloodChild(t *testing.T) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STREAMSESSION_FLOOD_CHILD=1")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	c := child{cmd: cmd, in: stdin, out: bufio.NewReader(stdout)}
	line, err := c.out.ReadString('\n')
	require.NoError(t, err)
	_, err = fmt.Sscanf(line, "addr %s max %d", &c.addr, &c.max)
	require.NoError(t, err, "child said %q", line)
	return &c
}

// fds counts the child's open files.
func (c *child) fds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.cmd.Process.Pid))
	require.NoError(t, err)
	return len(ents)
}

// memKB returns a field of the child's /proc status, in KiB (VmRSS,
// VmHWM).
func (c *child) memKB(t *testing.T, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	require.NoError(t, err)
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no %s in /proc status", field)
	return 0
}

// TestFloods runs the connection floods against a child node whose file
// limit is floodFDLimit: more idle keep-alive connections than it has
// files (floodConns) still leave it serving a new /healthz at once with at most 90%
// of its files open, and 600 unfinished 1 MiB header lines grow its
// memory by less than 150 MB.
func TestFloods(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	t.Run("idle keep-alive connections", func(t *testing.T) {
		c := startFloodChild(t)
		require.Equal(t, floodFDLimit*80/100, c.max)
		flood := floodConns
		conns := make([]*keepAlive, 0, flood)
		for range flood {
			k, resp := get(t, c.addr, PathHealthz)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			conns = append(conns, k)
		}
		fds := c.fds(t)
		t.Logf("%d idle connections sent: the node holds %d of %d files", flood, fds, floodFDLimit)
		assert.LessOrEqual(t, fds, floodFDLimit*90/100)

		start := time.Now()
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + c.addr + PathHealthz)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		t.Logf("a new /healthz answered in %v", time.Since(start))
		for _, k := range conns {
			k.conn.Close()
		}
	})

	t.Run("header bomb", func(t *testing.T) {
		c := startFloodChild(t)
		const bombs = 600
		before := c.memKB(t, "VmRSS")
		goBefore, _ := c.goMem(t)
		line := append([]byte("GET /healthz HTTP/1.1\r\nHost: test\r\nX-Bomb: "), strings.Repeat("a", 1<<20)...)
		var wg sync.WaitGroup
		answers := make(chan int, bombs)
		for range bombs {
			wg.Go(func() {
				conn, err := net.Dial("tcp", c.addr)
				if err != nil {
					answers <- 0
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				go conn.Write(line) // unfinished: no end of line; fails once the node closes
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					answers <- -1
					return
				}
				answers <- resp.StatusCode
			})
		}
		wg.Wait()
		close(answers)
		counts := map[int]int{}
		for a := range answers {
			counts[a]++
		}
		peak := c.memKB(t, "VmHWM")
		grew := max(0, peak-before) >> 10
		_, goPeak := c.goMem(t)
		t.Logf("%d unfinished 1 MiB header lines: answers %v; RSS %d MiB before, peak %d MiB (grew %d MiB); Go memory %d MiB before, peak %d MiB",
			bombs, counts, before>>10, peak>>10, grew, goBefore, goPeak)
		// The race detector's shadow memory (several times the program's
		// own) is in the RSS but not in Go's memory.
		assert.Less(t, goPeak-min(goPeak, goBefore), uint64(150))
		if !raceEnabled {
			assert.Less(t, grew, 150)
		}
		assert.Equal(t, bombs, counts[http.StatusRequestHeaderFieldsTooLarge]+counts[-1], "every bomb refused")
		assert.Positive(t, counts[http.StatusRequestHeaderFieldsTooLarge])

		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + c.addr + PathHealthz)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

// TestConnLimiterShedsSilentConnections: connections that never send a
// request are shed, oldest first, when nothing is idle.
func TestConnLimiterShedsSilentConnections(t *testing.T) {
	const maxConns = 5
	lim, addr := serveLimited(t, okHandler(), maxConns, ShedAfter(0))
	silent := make([]net.Conn, maxConns)
	for i := range silent {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		silent[i] = c
		require.Eventually(t, func() bool { return lim.Stats().Open == i+1 }, 5*time.Second, time.Millisecond)
	}
	_, resp := get(t, addr, "/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	silent[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := silent[0].Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the oldest silent connection is shed")
	assert.Equal(t, uint64(1), lim.Stats().Shed)
}

// TestConnLimiterUnderLoad: many busy clients opening connections at
// once never make the limiter hold more than its cap, and, since their
// connections are never quiet for ShedAfter, none is shed under them:
// every request is answered, the clients served in turns.
func TestConnLimiterUnderLoad(t *testing.T) {
	const maxConns = 8
	lim, addr := serveLimited(t, okHandler(), maxConns)
	stop := make(chan struct{})
	over := make(chan int, 1)
	go func() {
		for {
			select {
			case <-stop:
				close(over)
				return
			default:
			}
			if n := lim.Stats().Open; n > maxConns {
				select {
				case over <- n:
				default:
				}
			}
		}
	}()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 32 {
		wg.Go(func() {
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for range 20 {
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	close(stop)
	n, held := <-over
	assert.False(t, held, "%d connections open past the cap of %d", n, maxConns)
	assert.Equal(t, int64(0), failed.Load())
	assert.Equal(t, uint64(0), lim.Stats().Shed)
}

// TestConnLimiterShedsOnlyQuiet: a connection idle for less than
// ShedAfter is not shed: the new connection waits until it has been.
func TestConnLimiterShedsOnlyQuiet(t *testing.T) {
	const after = 300 * time.Millisecond
	lim, addr := serveLimited(t, okHandler(), 1, ShedAfter(after))
	k, resp := get(t, addr, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	idleSince := time.Now()
	require.Eventually(t, func() bool { return lim.Stats().Idle == 1 }, 5*time.Second, time.Millisecond)
	_, resp = get(t, addr, "/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.GreaterOrEqual(t, time.Since(idleSince), after, "served only once the idle one could be shed")
	assert.False(t, k.alive())
	assert.Equal(t, uint64(1), lim.Stats().Shed)
}
