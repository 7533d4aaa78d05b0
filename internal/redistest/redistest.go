// Package redistest starts a real redis-server for tests and benchmarks.
//
// Start runs redis-server as a child process on a free loopback port, with
// nothing persisted (--save "" --appendonly no) and DEBUG enabled for local
// connections, waits until it answers PING and registers a cleanup that
// closes every client it handed out, stops the server and reaps the process.
// Kill and Restart (on the same port) let failure tests take Redis away and
// bring it back.
//
// StartCluster runs a Redis Cluster (masters only) of such servers, with
// cluster mode on, for the backends' cluster tests: its slots are assigned
// and every node agrees on them when it returns, and NewClient hands out
// *redis.ClusterClient.
//
// When redis-server is not on PATH, Start and StartCluster skip the test
// with a message saying how to install it, except when the environment
// variable CI is non-empty: there a missing redis-server fails the test,
// because CI must run the Redis group.
//
// A Server and a Cluster are safe for concurrent use by multiple
// goroutines. Start from Start (or StartCluster); everything else hangs off
// the *Server (*Cluster) it returns.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Binary is the name of the executable Start looks for on PATH.
const Binary = "redis-server"

// startTimeout bounds how long Start and Restart wait for the server to say it
// is ready. It is a safety net against a hung child, not a timing assertion.
const startTimeout = 15 * time.Second

// portAttempts is how many free ports Start tries when another process takes
// the port between the probe and redis-server binding it.
const portAttempts = 5

// Server is a redis-server child process owned by one test or benchmark.
// It is safe for concurrent use by multiple goroutines.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int

	// clusterNode runs the server with --cluster-enabled, its cluster bus
	// on busPort and its cluster state in dir (see StartCluster).
	clusterNode bool
	busPort     int

	// opts are StartWith's extra settings; tlsPort is the TLS port when
	// opts.TLS is set.
	opts    Options
	tlsPort int
	tlsCert tlsFiles

	// sentinelConf, when set, runs the server as a Sentinel with that
	// configuration file (see StartSentinels).
	sentinelConf string

	mu      sync.Mutex
	proc    *process // nil while killed
	clients []*redis.Client
	stopped bool
}

// process is one run of redis-server.
type process struct {
	cmd   *exec.Cmd
	ready chan struct{} // closed when the server logged that it accepts connections
	done  chan struct{} // closed once the process has exited and been reaped
	err   error         // Wait's result, valid after done

	logMu sync.Mutex
	log   []string // the last lines of its log, for failure messages
}

// Start runs a fresh redis-server on a free loopback port and returns once it
// answers PING. The server and every client from Client or NewClient are
// stopped and closed when the test ends. Without redis-server on PATH, Start
// calls tb.Skip, or tb.Fatal when the environment variable CI is non-empty.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return startServer(tb, lookBinary(tb), false, Options{})
}

// Options are the extra settings of StartWith. The zero value starts the
// same server as Start. Options is a plain value, safe to copy.
type Options struct {
	// Args are appended to redis-server's command line. They must leave
	// the plain port answering PING without authentication, which Start
	// waits for: set a password with CONFIG SET or ACL SETUSER afterwards.
	Args []string
	// TLS makes the server also accept TLS connections on a second free
	// loopback port (TLSAddr), with a certificate for 127.0.0.1 signed by a
	// CA made for this server alone, whose PEM file CAFile names. Clients
	// are not asked for a certificate.
	TLS bool
}

// StartWith is Start with extra settings.
func StartWith(tb testing.TB, opt Options) *Server {
	tb.Helper()
	return startServer(tb, lookBinary(tb), false, opt)
}

// TLSAddr returns the host:port of the server's TLS port, or "" when it
// was not started with Options.TLS.
func (s *Server) TLSAddr() string {
	if s.tlsPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
}

// CAFile returns the PEM file of the CA that signed the TLS port's
// certificate, or "" when the server was not started with Options.TLS.
func (s *Server) CAFile() string {
	return s.tlsCert.ca
}

// lookBinary returns the path of redis-server, or skips (fails under CI) the
// test when it is not on PATH.
func lookBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		msg := "redistest: redis-server not found on PATH; install it (Debian/Ubuntu: apt-get install redis-server) to run the Redis tests"
		if os.Getenv("CI") != "" {
			tb.Fatal(msg + " (CI is set, so a missing redis-server is a failure)")
		}
		tb.Skip(msg)
	}
	return bin
}

// startServer runs bin on free loopback ports (a cluster node also gets a
// port for its cluster bus) and registers the cleanup that stops it. It
// tries other ports when another process takes one before redis-server
// binds it.
func startServer(tb testing.TB, bin string, clusterNode bool, opt Options) *Server {
	tb.Helper()
	return startServerWith(tb, &Server{tb: tb, bin: bin, dir: tb.TempDir(), clusterNode: clusterNode, opts: opt})
}

// startServerWith starts s, whose tb, bin, dir and mode are set.
func startServerWith(tb testing.TB, s *Server) *Server {
	tb.Helper()
	opt := s.opts
	clusterNode := s.clusterNode
	tb.Cleanup(s.stop)
	if opt.TLS {
		files, err := writeTLSFiles(s.dir)
		if err != nil {
			tb.Fatalf("redistest: make the TLS certificates: %v", err)
		}
		s.tlsCert = files
	}

	nports := 1
	if clusterNode || opt.TLS {
		nports = 2
	}
	var lastErr error
	for range portAttempts {
		ports, err := freePorts(nports)
		if err != nil {
			tb.Fatalf("redistest: find a free port: %v", err)
		}
		s.port = ports[0]
		if clusterNode {
			s.busPort = ports[1]
		}
		if opt.TLS {
			s.tlsPort = ports[1]
		}
		p, err := s.launch()
		if err == nil {
			s.mu.Lock()
			s.proc = p
			s.mu.Unlock()
			return s
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	tb.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

// Addr returns the server's host:port on the loopback interface. It stays the
// same across Kill and Restart.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Client returns a new client for the server with go-redis's defaults except
// ContextTimeoutEnabled, which is on so that context deadlines bound socket
// reads. It is closed when the test ends.
func (s *Server) Client() *redis.Client {
	return s.NewClient(&redis.Options{ContextTimeoutEnabled: true})
}

// NewClient returns a new client for the server built from opt, whose Addr is
// overwritten with the server's. It is closed when the test ends.
func (s *Server) NewClient(opt *redis.Options) *redis.Client {
	o := *opt
	o.Addr = s.Addr()
	c := redis.NewClient(&o)
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	return c
}

// Kill sends SIGKILL to the server and waits until the process is reaped.
// Clients see connection errors until Restart. Killing a killed server does
// nothing.
func (s *Server) Kill() {
	s.tb.Helper()
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// Restart kills the server if it runs, then starts an empty one on the same
// port and returns once it answers PING. Nothing survives a restart: the
// server persists nothing.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	p, err := s.launch()
	if err != nil {
		s.tb.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		p.kill()
		return
	}
	s.proc = p
	s.mu.Unlock()
}

// stop closes the clients and kills and reaps the server. It runs as the
// test's cleanup.
func (s *Server) stop() {
	s.mu.Lock()
	s.stopped = true
	clients := s.clients
	s.clients = nil
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	for _, c := range clients {
		_ = c.Close()
	}
	if p != nil {
		p.kill()
	}
}

var errAddrInUse = errors.New("address already in use")

// launch starts redis-server on s.port and waits until it accepts
// connections and answers PING.
func (s *Server) launch() (*process, error) {
	var args []string
	ready := "Ready to accept connections"
	if s.sentinelConf != "" {
		// A Sentinel rewrites its file; it says it is up once it monitors.
		args = append(args, s.sentinelConf, "--sentinel")
		ready = "+monitor master"
	}
	args = append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--enable-debug-command", "local",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "", // log to stdout, where launch reads "Ready to accept connections"
		"--loglevel", "notice",
		// A replica's first sync starts at once, not 5 s later.
		"--repl-diskless-sync-delay", "0",
	)
	if s.clusterNode {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			// Explicit: the default (port+10000) may be taken or past 65535.
			"--cluster-port", strconv.Itoa(s.busPort),
			// The address the other nodes and CLUSTER SLOTS give for this
			// node; without it a node may not know its own until it is met.
			"--cluster-announce-ip", "127.0.0.1",
		)
	}
	if s.opts.TLS {
		args = append(args,
			"--tls-port", strconv.Itoa(s.tlsPort),
			"--tls-cert-file", s.tlsCert.cert,
			"--tls-key-file", s.tlsCert.key,
			"--tls-ca-cert-file", s.tlsCert.ca,
			"--tls-auth-clients", "no",
		)
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	setDeathSignal(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout // the pipe's *os.File write end: one fd for both streams
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, ready: make(chan struct{}), done: make(chan struct{})}
	go p.watch(stdout, ready)

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-p.ready:
	case <-p.done:
		logs := p.lastLog()
		if strings.Contains(logs, "Address already in use") {
			return nil, fmt.Errorf("port %d: %w", s.port, errAddrInUse)
		}
		return nil, fmt.Errorf("redis-server exited before it was ready (%v); its log:\n%s", p.err, logs)
	case <-timer.C:
		p.kill()
		return nil, fmt.Errorf("redis-server not ready after %v; its log:\n%s", startTimeout, p.lastLog())
	}
	if err := ping(s.Addr()); err != nil {
		p.kill()
		return nil, fmt.Errorf("redis-server does not answer PING: %w; its log:\n%s", err, p.lastLog())
	}
	return p, nil
}

// watch reads the server's log until the process closes it, signals
// readiness, then reaps the process.
func (p *process) watch(r io.Reader, ready string) {
	sc := bufio.NewScanner(r)
	readySeen := false
	for sc.Scan() {
		line := sc.Text()
		p.logMu.Lock()
		if len(p.log) == 20 {
			p.log = p.log[1:]
		}
		p.log = append(p.log, line)
		p.logMu.Unlock()
		if !readySeen && strings.Contains(line, ready) {
			readySeen = true
			close(p.ready)
		}
	}
	// Drain whatever the scanner refused (an over-long line) so the child
	// never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
	p.err = p.cmd.Wait()
	close(p.done)
}

func (p *process) lastLog() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return strings.Join(p.log, "\n")
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// ping sends one PING on a fresh connection and checks for PONG.
func ping(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// freePorts asks the kernel for n distinct free loopback ports, holding
// each until all are found so that none is handed out twice. Another
// process may take one before redis-server binds it; startServer then tries
// others.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
