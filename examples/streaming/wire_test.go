package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
)

// freeAddr returns a loopback address free at the time of the call.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// waitHealthy polls base's /healthz until it answers 200.
func waitHealthy(t *testing.T, base string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s/healthz did not answer", base)
}

// TestStalledStderr runs the binary with stdout and stderr on a pipe
// nobody reads: 3,000 refused requests are each answered within 2 s, and a
// new realtime socket gets its first event within 2 s.
func TestStalledStderr(t *testing.T) {
	addr := freeAddr(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close() // never read: the pipe fills and stays full
	cmd := exec.Command(binary(t), "-addr", addr, "-log-format", "json")
	cmd.Stdout, cmd.Stderr = w, w
	require.NoError(t, cmd.Start())
	w.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	base := "http://" + addr
	waitHealthy(t, base)

	const requests, workers = 3000, 8
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	var (
		mu      sync.Mutex
		slowest time.Duration
		failed  int
		wg      sync.WaitGroup
	)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; j < requests; j += workers {
				req, _ := http.NewRequest(http.MethodPost, base+"/v1/streaming.new", strings.NewReader(`{}`))
				req.Header.Set("X-Api-Key", "not-a-key")
				start := time.Now()
				resp, err := client.Do(req)
				took := time.Since(start)
				mu.Lock()
				slowest = max(slowest, took)
				if err != nil || resp.StatusCode != http.StatusUnauthorized {
					failed++
				}
				mu.Unlock()
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d refused requests with stderr stalled: slowest answer %v", requests, slowest.Round(time.Millisecond))
	assert.Zero(t, failed, "every request answered 401")
	assert.Less(t, slowest, 2*time.Second)

	p := &proc{base: base}
	var c created
	p.call(t, "/v1/streaming.new", `{}`, &c)
	p.call(t, "/v1/streaming.start", `{"session_id":"`+c.SessionID+`"}`, nil)
	start := time.Now()
	ws, _, err := websocket.DefaultDialer.Dial(c.RealtimeEndpoint, nil)
	require.NoError(t, err)
	defer ws.Close()
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, msg, err := ws.ReadMessage()
	require.NoError(t, err, "the first event within 2 s")
	t.Logf("first socket event after %v: %s", time.Since(start).Round(time.Millisecond), msg)
	assert.Contains(t, string(msg), `"connected"`)
}

// TestConnectionFlood runs the binary with max_connections 16 and opens
// 64 silent connections: a new request is still answered (once silent
// connections have been quiet a second, they are shed for newer ones), and
// the process holds no more than the cap (plus its own few files).
func TestConnectionFlood(t *testing.T) {
	const maxConns, flood = 16, 64
	config := filepath.Join(t.TempDir(), "service.json")
	require.NoError(t, os.WriteFile(config, []byte(`{"max_connections": 16}`), 0o600))
	p := startBinary(t, "-config", config)
	host := strings.TrimPrefix(p.base, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := net.Dial("tcp", host)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get(p.base + "/healthz")
	require.NoError(t, err, "a new request is served while %d connections are held", flood)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	t.Logf("a new /healthz answered in %v with %d silent connections at max_connections %d", time.Since(start).Round(time.Millisecond), flood, maxConns)

	fds, err := os.ReadDir("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/fd")
	if err == nil {
		t.Logf("the process holds %d file descriptors", len(fds))
		assert.Less(t, len(fds), maxConns+32, "the cap bounds the open connections")
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-p.exited:
		require.NoError(t, err, "stderr:\n%s", p.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not exit")
	}
}

// TestRedisPasswordNeverLogged runs the binary on a Redis that asks for a
// password, given in a redis:// URL, then in a file: it serves, and neither
// its logs nor its errors (a wrong password) hold the password.
func TestRedisPasswordNeverLogged(t *testing.T) {
	srv := redistest.Start(t)
	const password = "s3cret-for-redis"
	require.NoError(t, srv.Client().ConfigSet(context.Background(), "requirepass", password).Err())

	wrong := exec.Command(binary(t), "-addr", "127.0.0.1:0", "-redis", "redis://default:bad"+password+"@"+srv.Addr())
	out, err := wrong.CombinedOutput()
	require.Error(t, err, "a wrong password stops the node: %s", out)
	assert.NotContains(t, string(out), password)
	assert.Contains(t, string(out), srv.Addr())

	file := filepath.Join(t.TempDir(), "redis-password")
	require.NoError(t, os.WriteFile(file, []byte(password+"\n"), 0o600))
	for _, args := range [][]string{
		{"-redis", "redis://default:" + password + "@" + srv.Addr()},
		{"-redis", srv.Addr(), "-redis-password-file", file},
	} {
		// The session's pending offer holds the drain until -drain-timeout
		// (a media session ends or is closed shutdown then).
		p := startBinary(t, append(args, "-log-format", "json", "-drain-delay", "0", "-drain-timeout", "2s")...)
		var c created
		p.call(t, "/v1/streaming.new", `{}`, &c)
		require.NotEmpty(t, c.SessionID)
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
		select {
		case err := <-p.exited:
			require.NoError(t, err, "stderr:\n%s", p.stderr.String())
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not exit")
		}
		assert.NotContains(t, p.stderr.String(), password)
		assert.Contains(t, p.stderr.String(), "draining")
		t.Logf("%v: %d bytes of logs, no password", args[:2], len(p.stderr.String()))
	}
}
