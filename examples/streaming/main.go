// Command streaming serves the streamsession demo: a HeyGen-compatible
// Streaming API (HTTP under /v1/ and the realtime WebSocket) on the
// library's session manager, in memory on one node or, with -redis, as one
// node of a service sharing a Redis.
//
// Usage:
//
//	go run ./examples/streaming                       # the built-in demo configuration
//	go run ./examples/streaming -config service.json  # a configuration file (see package service)
//	go run ./examples/streaming -client -key demo-pro-key   # run one whole session against a server (package client)
//
// Flags:
//
//	-addr ADDR     listen address (server) or server address (client); default 127.0.0.1:8080
//	-config FILE   the JSON configuration; without it, the demo configuration
//	-client        run the demo client (built on package client) instead of the server
//	-key KEY       client: the API key (default demo-pro-key)
//	-url URL       client: the server's base URL (default http://ADDR)
//	-text TEXT     client: what the avatar says
//	-timeout D     client: give up after this long (default 1m)
//	-admin-addr ADDR    serve /healthz, /readyz and /metrics there, apart from the API
//	                    (/metrics then leaves -addr); -metrics-addr is its older name
//	-public-url URL     the public base URL realtime_endpoint, url and ws_url are built from
//	                    (behind a load balancer); default the listen address
//	-log-format F  text (default) or json
//	-cors-origin O browser origins allowed to call the API (CORS) and open the socket,
//	               instead of the configuration's cors_origins: repeat the flag or
//	               separate origins with commas ("https://app.example.com",
//	               "http://localhost:*" for any port, "*" for any origin;
//	               -cors-origin "" allows none)
//	-redis ADDR    run as one node of a service sharing the Redis at ADDR (limits,
//	               sessions, tokens and speech events in Redis); every node reads the same -config.
//	               ADDR is host:port or a URL: redis://, rediss://, redis+sentinel://, redis+cluster://
//	-redis-ca FILE            with rediss://: the PEM file of the authorities trusted
//	-redis-password-file FILE the Redis password (else $STREAMSESSION_REDIS_PASSWORD when set)
//	-redis-prefix P           with -redis: the hash tag of every key (default streamsession)
//	-lease-ttl D              with -redis: slot lease lifetime (default 30s)
//	-request-timeout D        with -redis: bound of each API request (default 10s)
//	-secret-file FILE         the service's secret (16 bytes or more, the same on every node);
//	                          default: with -redis one agreed through Redis, alone a random one
//	-drain-timeout D  bound of the shutdown after SIGINT or SIGTERM (default 30s)
//	-request-grace D  at shutdown, time a request in flight may take (default 5s)
//	-drain-delay D    with -redis: time HTTP is still served after /readyz
//	                  turned 503, for load balancers (default 5s; 0: none)
//	-media=false         serve no media even when the configuration enables it
//	-media-udp ADDR      the one UDP address of every WebRTC peer (replaces media.udp;
//	                     the demo's is 127.0.0.1:0, loopback only)
//	-media-public-ip IP  the address put in the server's candidates behind a 1:1 NAT
//	                     (replaces media.public_ip)
//	-media-node-url URL  with -redis: this node's base URL as the other nodes reach it
//	                     (replaces media.node_url; required with -redis when media is on)
//
// The server serves LiveAvatar's API at /v1/sessions beside the Streaming
// API, the live session console at /, Prometheus metrics at /metrics and
// the probes /healthz and /readyz. It logs to standard error with log/slog
// through a bounded buffer (a stalled reader drops lines, never holds a
// request), never a token, an API key, a Redis password or a raw session id
// (sessions appear as a short hash).
//
// SIGINT or SIGTERM stops it, within -drain-timeout, and it exits 0. Alone
// (without -redis) it closes every session (reason shutdown: connected
// clients receive closing and closed, then a close frame) and frees every
// slot, while the listener stops: a connection that carries no request is
// closed at once, a request in flight gets -request-grace. With -redis it
// drains instead: /readyz answers 503, every realtime socket is closed with
// 1012 (service restart) so that its client reopens it through another
// node, HTTP is served for -drain-delay more, and the node leaves without
// changing any session.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its dependencies explicit; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("streaming", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (server) or server address (client)")
	configPath := fs.String("config", "", "JSON configuration file (default: the built-in demo configuration)")
	client := fs.Bool("client", false, "run the demo client against a running server")
	key := fs.String("key", "demo-pro-key", "client: API key")
	baseURL := fs.String("url", "", "client: server base URL (default http://ADDR)")
	text := fs.String("text", "Hello! I am a streaming avatar, served by streamsession.", "client: what the avatar says")
	timeout := fs.Duration("timeout", time.Minute, "client: give up after this long")
	var node service.Config
	fs.StringVar(&node.AdminAddr, "admin-addr", "", "serve /healthz, /readyz and /metrics on this address, apart from the API (replaces the configuration's admin_addr; /metrics then leaves -addr)")
	fs.StringVar(&node.MetricsAddr, "metrics-addr", "", "older name of -admin-addr")
	fs.StringVar(&node.PublicURL, "public-url", "", "public base URL of the node (https://api.example.com), from which realtime_endpoint, url and ws_url are built (replaces the configuration's public_url; default: the listen address)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	fs.DurationVar(&node.Shutdown.DrainTimeout, "drain-timeout", service.DefaultDrainTimeout, "bound of the shutdown after SIGINT or SIGTERM: the node exits within it")
	fs.DurationVar(&node.Shutdown.RequestGrace, "request-grace", service.DefaultRequestGrace, "at shutdown, how long a request in flight may take before its connection is closed")
	fs.DurationVar(&node.Shutdown.DrainDelay, "drain-delay", service.DefaultDrainDelay, "with -redis: how long a draining node keeps serving HTTP after /readyz turned 503 (0: none)")
	var cors originsFlag
	fs.Var(&cors, "cors-origin", "browser origin allowed to call the API (repeatable or comma-separated; replaces the configuration's cors_origins)")
	rds := &node.Redis
	fs.StringVar(&rds.Addr, "redis", "", "Redis address (host:port, or a URL: redis://, rediss://, redis+sentinel://, redis+cluster://): run as one node of the service sharing that Redis")
	fs.StringVar(&rds.CAFile, "redis-ca", "", "with -redis: PEM file of the certificate authorities a rediss:// URL trusts")
	fs.StringVar(&rds.PasswordFile, "redis-password-file", "", "with -redis: file holding the Redis password (else $STREAMSESSION_REDIS_PASSWORD when set)")
	fs.StringVar(&rds.Prefix, "redis-prefix", "", "with -redis: the hash tag of every key (default streamsession)")
	fs.DurationVar(&rds.LeaseTTL, "lease-ttl", 0, "with -redis: slot lease lifetime (default 30s; for tests)")
	fs.DurationVar(&rds.RequestTimeout, "request-timeout", 0, "with -redis: bound of each API request (default 10s)")
	mediaOn := fs.Bool("media", true, "serve media (WebRTC) when the configuration enables it; -media=false turns it off")
	fs.StringVar(&node.Media.UDPAddr, "media-udp", "", "the one UDP address (IP:port) every WebRTC peer shares (replaces the configuration's media.udp)")
	fs.StringVar(&node.Media.PublicIP, "media-public-ip", "", "the IP address put in the server's ICE candidates, behind a 1:1 NAT (replaces the configuration's media.public_ip)")
	fs.StringVar(&node.Media.NodeURL, "media-node-url", "", "with -redis: this node's base URL as the other nodes reach it, for media (replaces the configuration's media.node_url)")
	secretFile := fs.String("secret-file", "", "file holding the service's secret (16 bytes or more; every node the same): it keys the access and bearer tokens and seals idempotent answers; default: with -redis one agreed through Redis, alone a random one")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "streaming: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	if *client {
		base := *baseURL
		if base == "" {
			base = "http://" + *addr
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		if err := runClient(ctx, clientOptions{BaseURL: base, APIKey: *key, Text: *text}, stdout); err != nil {
			fmt.Fprintf(stderr, "client: %v\n", err)
			return 1
		}
		return 0
	}

	var sink slog.Handler
	switch *logFormat {
	case "text":
		sink = slog.NewTextHandler(stderr, nil)
	case "json":
		sink = slog.NewJSONHandler(stderr, nil)
	default:
		fmt.Fprintf(stderr, "streaming: -log-format must be text or json, not %q\n", *logFormat)
		return 2
	}
	if err := service.CheckPublicURL(node.PublicURL); err != nil {
		fmt.Fprintf(stderr, "streaming: -public-url: %v\n", err)
		return 2
	}
	if node.Media.UDPAddr != "" {
		if err := service.CheckMediaUDP(node.Media.UDPAddr); err != nil {
			fmt.Fprintf(stderr, "streaming: -media-udp: %v\n", err)
			return 2
		}
	}
	if err := service.CheckMediaPublicIP(node.Media.PublicIP); err != nil {
		fmt.Fprintf(stderr, "streaming: -media-public-ip: %v\n", err)
		return 2
	}
	if err := service.CheckNodeURL(node.Media.NodeURL); err != nil {
		fmt.Fprintf(stderr, "streaming: -media-node-url: %v\n", err)
		return 2
	}
	// No request or socket ever waits on stderr: records go through a
	// bounded buffer (dropped and counted when a reader stalls), and the
	// routine lines are bounded per account.
	async := observe.NewAsyncHandler(sink, observe.AsyncConfig{})
	routine := observe.NewRoutineLimiter(async, observe.RoutineConfig{})
	logger := slog.New(routine)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), logFlushTimeout)
		defer cancel()
		_ = async.Close(ctx)
	}()
	if *secretFile != "" {
		secret, err := readSecret(*secretFile)
		if err != nil {
			fmt.Fprintf(stderr, "streaming: -secret-file: %v\n", err)
			return 2
		}
		node.Secret = secret
	}
	opts := serveOptions{Addr: *addr, ConfigPath: *configPath, Node: node, CORSOrigins: cors.origins, NoMedia: !*mediaOn,
		Collectors: []prometheus.Collector{async.Collector(), routine.Collector()}}
	if err := serve(ctx, opts, stdout, logger); err != nil {
		fmt.Fprintf(stderr, "streaming: %v\n", err)
		return 1
	}
	return 0
}

// logFlushTimeout bounds the writing of the last log lines at exit, so
// that a stalled reader of stderr cannot hold it.
const logFlushTimeout = 2 * time.Second

// readSecret reads a secret file: its bytes, without the white space that
// ends it (so `head -c 32 /dev/urandom | base64 > secret` and raw bytes
// both work), at least 16 of them.
func readSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secret := bytes.TrimRight(data, " \t\r\n")
	if len(secret) < 16 {
		return nil, fmt.Errorf("%s holds %d bytes; a secret needs 16 or more", path, len(secret))
	}
	return secret, nil
}

// originsFlag collects -cors-origin: every use adds its comma-separated
// origins; origins stays nil while the flag is not given, so that the
// configuration's cors_origins apply.
type originsFlag struct{ origins []string }

func (f *originsFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(f.origins, ",")
}

func (f *originsFlag) Set(v string) error {
	if f.origins == nil {
		f.origins = []string{}
	}
	for o := range strings.SplitSeq(v, ",") {
		if o = strings.TrimSpace(o); o != "" {
			f.origins = append(f.origins, o)
		}
	}
	return nil
}
