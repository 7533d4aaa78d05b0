//go:build scale

package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/service"
)

// The scale check: 10,000 realtime WebSocket sessions connected
// to one in-process server over loopback. It is kept out of the default
// test run by the scale build tag:
//
//	go test -tags scale -run TestScale -v .
//
// SCALE_SESSIONS=n changes the number of sessions; SCALE_HEAPPROFILE=file
// writes a heap profile of the server while every session is connected.
//
// TestScale serves; the clients run in a child process (this test binary
// again, running TestScaleClients), so that the heap and stacks measured in
// this process are the server's alone. The child creates, starts and
// connects every session over HTTP and WebSocket and says READY; TestScale
// measures heap + stack bytes per connected session, then stops every
// session at once with Manager.Close and measures the time until every
// client has received session.state_updated closing (and closed).

const (
	// scaleSessions is how many sessions the scale check connects
	// (SCALE_SESSIONS overrides it).
	scaleSessions = 10_000
	// scaleWorkers is how many sessions the child sets up at once.
	scaleWorkers = 64
	// scaleAPIKey is the API key of the scale check's one account.
	scaleAPIKey = "scale-key"
	// Environment of the child process.
	envScaleURL = "STREAMSESSION_SCALE_URL"
	envScaleN   = "STREAMSESSION_SCALE_N"
	// scaleTimeout bounds every wait of the scale check: a safety net, not
	// a timing assertion.
	scaleTimeout = 5 * time.Minute
)

// scaleConfig is the server's configuration: one paid account allowed all
// the sessions, and a service capacity above them.
func scaleConfig(n int) string {
	return fmt.Sprintf(`{
  "capacity": %d,
  "plans": {"pro": {"max_concurrent": %d}},
  "accounts": [{"api_key": %q, "name": "scale", "plan": "pro"}],
  "avatars": [{"avatar_id": "Wayne_20240711", "public": true, "status": "ACTIVE", "default": true}]
}`, 2*n, n, scaleAPIKey)
}

// raiseNoFile raises the soft limit on open files to the hard limit and
// fails the test when that is below need.
func raiseNoFile(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	}
	if lim.Cur < need {
		t.Fatalf("RLIMIT_NOFILE is %d (hard %d); the scale check needs %d: raise the hard limit (ulimit -Hn)", lim.Cur, lim.Max, need)
	}
}

func scaleN(t *testing.T) int {
	t.Helper()
	s := os.Getenv("SCALE_SESSIONS")
	if s == "" {
		s = os.Getenv(envScaleN)
	}
	if s == "" {
		return scaleSessions
	}
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	require.Positive(t, n)
	return n
}

// liveBytes returns the heap and stack bytes in use after a full
// collection.
func liveBytes() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

func TestScale(t *testing.T) {
	if os.Getenv(envScaleURL) != "" {
		t.Skip("this is the scale check's client process")
	}
	n := scaleN(t)
	raiseNoFile(t, uint64(n)+1000)
	ctx := context.Background()

	cfg, err := service.Parse([]byte(scaleConfig(n)))
	require.NoError(t, err)
	svc, err := service.New(context.Background(), cfg, service.Options{})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/v1/", svc.Server)
	ts := httptest.NewUnstartedServer(mux)
	// httpConns counts the connections still speaking HTTP (not yet
	// hijacked by a WebSocket upgrade, nor closed), so that the
	// measurement waits for the server to drop those the child used for
	// streaming.new and streaming.start.
	var httpConns sync.Map
	ts.Config.ConnState = func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateHijacked, http.StateClosed:
			httpConns.Delete(c)
		default:
			httpConns.Store(c, st)
		}
	}
	ts.Start()
	defer ts.Close()
	defer func() { require.NoError(t, svc.Shutdown(ctx)) }()

	heap0, stack0 := liveBytes()
	goroutines0 := runtime.NumGoroutine()

	child := exec.Command(os.Args[0], "-test.run=^TestScaleClients$", "-test.v", "-test.timeout=10m")
	child.Env = append(os.Environ(), envScaleURL+"="+ts.URL, envScaleN+"="+strconv.Itoa(n))
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	require.NoError(t, err)
	setup := time.Now()
	require.NoError(t, child.Start())
	childDone := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "SCALE-") {
				lines <- line
			} else {
				fmt.Println("client:", line)
			}
		}
		close(lines)
		childDone <- child.Wait()
	}()
	expect := func(prefix string) time.Time {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the client process exited before %s: %v", prefix, <-childDone)
			}
			require.True(t, strings.HasPrefix(line, prefix), "client said %q, want %s", line, prefix)
			return time.Now()
		case <-time.After(scaleTimeout):
			_ = child.Process.Kill()
			t.Fatalf("no %s from the client process within %v", prefix, scaleTimeout)
		}
		return time.Time{}
	}

	expect("SCALE-READY")
	setupTime := time.Since(setup)
	list, err := svc.Manager.List(ctx, "scale")
	require.NoError(t, err)
	require.Len(t, list, n)
	for _, s := range list {
		require.Equal(t, fsm.Connected, s.State, "every session is connected")
	}
	// The child closed its idle HTTP connections before READY; wait until
	// the server has seen them go, so that only the sessions are measured.
	require.Eventually(t, func() bool {
		open := 0
		httpConns.Range(func(any, any) bool { open++; return true })
		return open == 0
	}, scaleTimeout, 10*time.Millisecond, "HTTP connections still open")
	heap1, stack1 := liveBytes()
	goroutines1 := runtime.NumGoroutine()
	if path := os.Getenv("SCALE_HEAPPROFILE"); path != "" {
		// What the connected sessions hold, for go tool pprof
		// -sample_index=inuse_space.
		f, err := os.Create(path)
		require.NoError(t, err)
		require.NoError(t, pprof.WriteHeapProfile(f))
		require.NoError(t, f.Close())
	}

	closeStart := time.Now()
	closeErr := make(chan error, 1)
	go func() { closeErr <- svc.Manager.Close(ctx) }()
	firstClosing := expect("SCALE-FIRST-CLOSING")
	allClosing := expect("SCALE-CLOSING")
	allClosed := expect("SCALE-CLOSED")
	require.NoError(t, <-closeErr)
	select {
	case err := <-childDone:
		require.NoError(t, err, "the client process")
	case <-time.After(scaleTimeout):
		_ = child.Process.Kill()
		t.Fatal("the client process did not exit")
	}

	perHeap := (float64(heap1) - float64(heap0)) / float64(n)
	perStack := (float64(stack1) - float64(stack0)) / float64(n)
	per := perHeap + perStack
	report := []string{
		fmt.Sprintf("SCALE sessions connected:                %d (setup over HTTP + WebSocket in %v)", n, setupTime.Round(time.Millisecond)),
		fmt.Sprintf("SCALE heap per connected session:        %.0f B", perHeap),
		fmt.Sprintf("SCALE stack per connected session:       %.0f B", perStack),
		fmt.Sprintf("SCALE heap+stack per connected session:  %.0f B = %.1f KiB (goal ≤ 40 KiB: %s)", per, per/1024, verdict(per <= 40*1024)),
		fmt.Sprintf("SCALE server goroutines per session:     %.2f (%d → %d)", float64(goroutines1-goroutines0)/float64(n), goroutines0, goroutines1),
		fmt.Sprintf("SCALE Manager.Close → first got closing:   %v", firstClosing.Sub(closeStart).Round(time.Microsecond)),
		fmt.Sprintf("SCALE Manager.Close → all %d got closing: %v", n, allClosing.Sub(closeStart).Round(time.Millisecond)),
		fmt.Sprintf("SCALE Manager.Close → all %d got closed:  %v", n, allClosed.Sub(closeStart).Round(time.Millisecond)),
	}
	for _, r := range report {
		t.Log(r)
	}
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// TestScaleClients is the scale check's client process; it runs only when
// TestScale starts it.
func TestScaleClients(t *testing.T) {
	base := os.Getenv(envScaleURL)
	if base == "" {
		t.Skip("runs only as TestScale's client process")
	}
	n := scaleN(t)
	raiseNoFile(t, uint64(n)+1000)
	ctx, cancel := context.WithTimeout(context.Background(), scaleTimeout)
	defer cancel()

	c := newAPIClient(base, scaleAPIKey, scaleWorkers)
	dialer := &websocket.Dialer{HandshakeTimeout: time.Minute, ReadBufferSize: 512, WriteBufferSize: 512}
	var (
		closing, closed atomic.Int64
		allClosing      = make(chan struct{})
		allClosed       = make(chan struct{})
		readers         sync.WaitGroup
		next            atomic.Int64
		setupErr        = make(chan error, scaleWorkers)
		workers         sync.WaitGroup
	)
	read := func(conn *websocket.Conn) {
		defer readers.Done()
		defer conn.Close()
		for {
			var msg realtimeMessage
			if err := conn.ReadJSON(&msg); err != nil {
				return
			}
			if msg.Type != realtime.TypeStateUpdated {
				continue
			}
			switch msg.State {
			case "closing":
				switch closing.Add(1) {
				case 1:
					fmt.Printf("SCALE-FIRST-CLOSING\n")
				case int64(n):
					close(allClosing)
				}
			case "closed":
				if closed.Add(1) == int64(n) {
					close(allClosed)
				}
			}
		}
	}
	for range scaleWorkers {
		workers.Go(func() {
			for next.Add(1) <= int64(n) {
				s, err := c.startSession(ctx)
				if err != nil {
					setupErr <- err
					return
				}
				conn, err := dialRealtime(ctx, dialer, s)
				if err != nil {
					setupErr <- err
					return
				}
				readers.Add(1)
				go read(conn)
			}
		})
	}
	workers.Wait()
	select {
	case err := <-setupErr:
		t.Fatal(err)
	default:
	}
	c.close()
	fmt.Printf("SCALE-READY %d\n", n)
	wait := func(ch chan struct{}, what string, got *atomic.Int64) {
		select {
		case <-ch:
			fmt.Printf("SCALE-%s %d\n", what, n)
		case <-ctx.Done():
			t.Fatalf("%s: %d of %d sockets got it within %v", what, got.Load(), n, scaleTimeout)
		}
	}
	wait(allClosing, "CLOSING", &closing)
	wait(allClosed, "CLOSED", &closed)
	readers.Wait() // the server closes every socket after closed
}
