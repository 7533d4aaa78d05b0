package clustertest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// haproxy is a real load balancer (the Debian haproxy package) in front of
// the nodes, as in production: it routes by round robin to the nodes whose
// /readyz answers 200, retries a request that found no node (or a draining
// one) on another, and tunnels WebSockets.
type haproxy struct {
	base string // http://127.0.0.1:port
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

// haproxyConfig is the load balancer of the tests. The probes run every
// 200 ms and one answer changes a node's status (fall 1, rise 1), so that
// a draining node is out of rotation within 200 ms of its /readyz turning
// 503. A request that could not reach a node, got no answer, or got a 503
// (a draining node refusing a new socket) is tried again, each time on
// another node (retries 3, option redispatch 1, retry-on). "timeout
// tunnel" keeps an idle WebSocket open.
const haproxyConfig = `global
  maxconn 2000

defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout http-request 5s
  timeout tunnel 1h
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response 503

frontend api
  bind 127.0.0.1:%d
  default_backend nodes

backend nodes
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 200ms fall 1 rise 1
%s`

// lookHAProxy returns the path of haproxy, or skips the test (fails it
// when CI is set: CI must run it).
func lookHAProxy(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr == nil {
			return "/usr/sbin/haproxy"
		}
		msg := "haproxy not found on PATH; install it with `apt-get install haproxy`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set, so a missing haproxy is a failure)")
		}
		t.Skip(msg)
	}
	return bin
}

// freePort returns a loopback port free at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startHAProxy starts haproxy in the foreground on port, in front of the
// backends (host:port), and waits until it routes a request. It is killed
// when the test ends.
func startHAProxy(t *testing.T, port int, backends []string) *haproxy {
	t.Helper()
	bin := lookHAProxy(t)
	var servers strings.Builder
	for i, b := range backends {
		fmt.Fprintf(&servers, "  server n%d %s check\n", i, b)
	}
	cfgPath := filepath.Join(t.TempDir(), "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(haproxyConfig, port, servers.String())), 0o600))
	check := exec.Command(bin, "-c", "-f", cfgPath)
	out, err := check.CombinedOutput()
	require.NoError(t, err, "haproxy -c:\n%s", out)

	h := &haproxy{base: fmt.Sprintf("http://127.0.0.1:%d", port), log: &lockedBuffer{}, done: make(chan struct{})}
	h.cmd = exec.Command(bin, "-db", "-f", cfgPath)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	setDeathSignal(h.cmd)
	require.NoError(t, h.cmd.Start())
	go func() {
		_ = h.cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		_ = h.cmd.Process.Signal(syscall.SIGKILL)
		<-h.done
	})
	waitFor(t, "haproxy routes /healthz", 10*time.Second, func() bool {
		select {
		case <-h.done:
			t.Fatalf("haproxy exited:\n%s", h.log)
		default:
		}
		resp, err := http.Get(h.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return h
}
