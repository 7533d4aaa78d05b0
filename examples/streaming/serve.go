package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/streamsession/streamsession/console"
	"github.com/streamsession/streamsession/metrics"
	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/config"
	"github.com/streamsession/streamsession/session"
)

// Defaults of the shutdown flags.
const (
	// defaultDrainTimeout bounds the whole shutdown (-drain-timeout).
	defaultDrainTimeout = 30 * time.Second
	// defaultRequestGrace is how long a request in flight when the listener
	// stops may take to finish (-request-grace).
	defaultRequestGrace = 5 * time.Second
	// defaultDrainDelay is how long a draining node keeps serving HTTP after
	// /readyz turned 503, so that load balancers take it out of rotation
	// before it stops listening (-drain-delay).
	defaultDrainDelay = 5 * time.Second
)

type serveOptions struct {
	Addr       string
	ConfigPath string
	// MetricsAddr, when set, serves /metrics on its own listener instead of
	// on Addr.
	MetricsAddr string
	// Redis, when its Addr is set, puts the limiter, the sessions and the
	// bearer tokens in Redis (see redis.go).
	Redis redisOptions
	// Secret (-secret-file) keys the access and bearer tokens and seals
	// the idempotent answers kept in Redis; nil: alone a random one, with
	// Redis one agreed through it.
	Secret []byte
	// CORSOrigins, when not nil (-cors-origin given), replaces the
	// configuration's cors_origins.
	CORSOrigins []string
	// DrainTimeout bounds the shutdown after SIGINT or SIGTERM: the node
	// exits within it. Zero means defaultDrainTimeout.
	DrainTimeout time.Duration
	// RequestGrace is how long a request in flight when the listener stops
	// may take to finish before its connection is closed. Zero means
	// defaultRequestGrace.
	RequestGrace time.Duration
	// DrainDelay is how long a draining node (with -redis) keeps serving
	// HTTP after /readyz turned 503 (-drain-delay; zero: none), at most
	// half of DrainTimeout.
	DrainDelay time.Duration
}

func (o *serveOptions) setDefaults() {
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = defaultDrainTimeout
	}
	if o.RequestGrace <= 0 {
		o.RequestGrace = defaultRequestGrace
	}
}

// serve runs the server until ctx is done, then shuts it down (see
// shutdown).
func serve(ctx context.Context, opts serveOptions, stdout io.Writer, logger *slog.Logger) error {
	opts.setDefaults()
	cfg := config.Demo()
	if opts.ConfigPath != "" {
		var err error
		if cfg, err = config.Load(opts.ConfigPath); err != nil {
			return err
		}
	}
	if opts.CORSOrigins != nil {
		cfg.CORSOrigins = opts.CORSOrigins
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	met, err := metrics.New(reg, metrics.Config{Backend: metrics.DefaultBackend})
	if err != nil {
		return err
	}
	logHooks := observe.SessionHooks(logger)
	svcOpts := config.Options{
		Session: session.Config{Hooks: observe.JoinHooks(met.SessionHooks(),
			session.Hooks{OnRefused: logHooks.OnRefused, OnLimiter: logHooks.OnLimiter})},
		Server: server.Config{
			Hooks: observe.JoinServerHooks(met.ServerHooks(), observe.ServerHooks(logger)),
			Idempotency: server.IdempotencyConfig{FinishFailed: func(err error) {
				logger.Warn("idempotency: the answer of streaming.new was not recorded", "err", err)
			}},
		},
	}
	var rds *redisBackends
	// deadline is when the node must have exited, set when the shutdown
	// begins.
	deadline := time.Now().Add(opts.DrainTimeout)
	svcOpts.Server.Secret = opts.Secret
	if opts.Redis.Addr != "" {
		opts.Redis.Secret = opts.Secret
		if rds, err = openRedis(ctx, opts.Redis, cfg); err != nil {
			return err
		}
		defer func() { // after the shutdown, within its bound
			if err := rds.closeBy(deadline); err != nil {
				logger.Warn("closing the Redis backends", "err", err)
			}
		}()
		rds.apply(&svcOpts)
		// /readyz: this node can take work while Redis answers.
		svcOpts.Server.Ready = func(ctx context.Context) error { return rds.client.Ping(ctx).Err() }
	}
	svc, err := config.NewService(cfg, svcOpts)
	if err != nil {
		return err
	}
	// Transitions are logged from a subscription (its own goroutine), so a
	// slow log never holds a session.
	svc.Manager.Subscribe(logHooks.OnTransition)

	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	var metricsServer *http.Server
	if opts.MetricsAddr != "" {
		mln, err := net.Listen("tcp", opts.MetricsAddr)
		if err != nil {
			_ = svc.Shutdown(context.Background())
			return err
		}
		mmux := http.NewServeMux()
		mmux.Handle("/metrics", metricsHandler)
		metricsServer = &http.Server{Handler: mmux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
		go func() { _ = metricsServer.Serve(mln) }()
		defer metricsServer.Close()
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", mln.Addr())
	}

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		_ = svc.Shutdown(context.Background())
		return err
	}
	base := "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	var api http.Handler = svc.Server
	if rds != nil {
		api = rds.handler(api)
	}
	mux.Handle("/v1/", api)
	health := svc.Server.Health()
	mux.Handle(server.PathHealthz, health)
	mux.Handle(server.PathReadyz, health)
	if metricsServer == nil {
		mux.Handle("/metrics", metricsHandler)
	}
	mux.Handle("/", consolePage(cfg, opts.ConfigPath == ""))
	conns := newConnTracker()
	hs := &http.Server{
		Handler: mux,
		// A client has this long to send its request's headers, and an
		// idle keep-alive connection is closed after IdleTimeout.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnState:         conns.track,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	printBanner(stdout, base, cfg, opts.ConfigPath == "")
	logger.Info("listening", "addr", ln.Addr().String(), "accounts", len(cfg.Accounts), "capacity", cfg.Capacity)

	n := &node{opts: opts, svc: svc, hs: hs, conns: conns, served: served, met: met, logger: logger}
	select {
	case <-ctx.Done():
	case err := <-served:
		_ = svc.Shutdown(context.Background())
		return err
	}
	deadline = time.Now().Add(opts.DrainTimeout)
	if rds != nil {
		return n.drain()
	}
	return n.shutdown()
}

// node is what the shutdown of a running server works on.
type node struct {
	opts   serveOptions
	svc    *config.Service
	hs     *http.Server
	conns  *connTracker
	served chan error
	met    *metrics.Metrics
	logger *slog.Logger
}

// shutdown ends a node that runs alone (in memory): nothing would survive
// it, so it closes every session (reason shutdown: sockets receive closing
// and closed, then a close frame, and every slot is freed). The session
// work does not wait for the listener: the listener stops at the same time
// (connections that carry no request are closed at once, a request in
// flight gets RequestGrace), so a client that holds a silent connection
// cannot hold the shutdown. It fails (exit status 1) only when the sessions
// could not be closed within DrainTimeout.
func (n *node) shutdown() error {
	start := time.Now()
	n.logger.Info("shutting down", "timeout", n.opts.DrainTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.DrainTimeout)
	defer cancel()
	httpDone := n.stopHTTP(ctx)
	errSvc := n.svc.Shutdown(ctx)
	<-httpDone
	if errSvc != nil {
		return fmt.Errorf("shutdown: %w", errSvc)
	}
	n.logger.Info("stopped", "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// drain ends one node of a multi-node service without ending its
// sessions, whose state is in Redis: /readyz turns 503 at once, every
// realtime socket is closed with 1012 (its client reopens it through
// another node), HTTP requests are served until the sockets are gone and
// DrainDelay has passed, then the listener stops as in shutdown and the
// Manager leaves (its loops stop; no session changes state, no slot is
// freed). It fails when the node could not leave within DrainTimeout.
func (n *node) drain() error {
	start := time.Now()
	n.met.DrainStarted()
	n.logger.Info("draining", "timeout", n.opts.DrainTimeout, "delay", n.opts.DrainDelay)
	// Redis is closed afterwards, within the same bound (see serve).
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.DrainTimeout*9/10)
	defer cancel()
	// Each answer from now on closes its connection, so that clients and
	// load balancers reconnect to the nodes that stay.
	n.hs.SetKeepAlivesEnabled(false)
	delay := time.NewTimer(min(n.opts.DrainDelay, n.opts.DrainTimeout/2))
	defer delay.Stop()
	errDrain := n.svc.Server.Drain(ctx)
	n.logger.Info("sockets drained", "elapsed", time.Since(start).Round(time.Millisecond), "err", errDrain)
	select {
	case <-delay.C:
	case <-ctx.Done():
	}
	<-n.stopHTTP(ctx)
	// The sockets are gone: the Server's subscriptions end at once. Then
	// the Manager leaves, which needs Redis to hand the sessions over.
	errSrv := n.svc.Server.Shutdown(ctx)
	errMgr := n.svc.Manager.Leave(ctx)
	if err := errors.Join(errSrv, errMgr); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	n.logger.Info("stopped", "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// stopHTTP stops the listener and closes every connection that carries no
// request at once; a request in flight gets RequestGrace (within ctx) to
// finish, then its connection is closed. The channel is closed when the
// HTTP server has stopped.
func (n *node) stopHTTP(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		gctx, cancel := context.WithTimeout(ctx, n.opts.RequestGrace)
		defer cancel()
		shut := make(chan error, 1)
		go func() { shut <- n.hs.Shutdown(gctx) }()
		n.conns.closeQuiet()
		if err := <-shut; err != nil {
			// Requests still in flight: cut them.
			n.logger.Warn("requests cut at shutdown", "grace", n.opts.RequestGrace, "active", n.conns.active())
			_ = n.hs.Close()
		}
		if err := <-n.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Warn("http server", "err", err)
		}
	}()
	return done
}

// printBanner tells a newcomer what to do next. API keys are printed only
// for the built-in demo configuration, whose keys are public.
func printBanner(w io.Writer, base string, cfg *config.Config, demo bool) {
	fmt.Fprintf(w, "streamsession server listening on %s\n", base)
	fmt.Fprintf(w, "  page: %s/  (the live session console)\n", base)
	fmt.Fprintf(w, "  API:  %s/v1/ (HeyGen Streaming API compatible)\n", base)
	key := "YOUR_API_KEY"
	if demo {
		fmt.Fprintln(w, "  demo API keys:")
		for _, a := range cfg.Accounts {
			fmt.Fprintf(w, "    %-16s account %s, plan %s\n", a.APIKey, a.Name, a.Plan.Name)
		}
		if len(cfg.Accounts) > 0 {
			key = cfg.Accounts[len(cfg.Accounts)-1].APIKey
		}
	} else {
		fmt.Fprintf(w, "  %d accounts from the configuration file\n", len(cfg.Accounts))
	}
	fmt.Fprintln(w, "  try:")
	fmt.Fprintf(w, "    curl -s -X POST %s/v1/streaming.new -H 'X-Api-Key: %s' -H 'Content-Type: application/json' -d '{}'\n", base, key)
	fmt.Fprintf(w, "    go run ./examples/streaming -client -key %s -url %s\n", key, base)
}

// consolePage is the live session console at "/". It offers the demo
// configuration's keys in its account picker; with a configuration file it
// offers none (the user pastes a key).
func consolePage(cfg *config.Config, demo bool) http.Handler {
	var keys []console.DemoKey
	if demo {
		for _, a := range cfg.Accounts {
			keys = append(keys, console.DemoKey{Name: a.Name, APIKey: a.APIKey})
		}
	}
	return console.Handler(console.Options{DemoKeys: keys})
}

// closeBy closes the Redis backends, giving up at deadline: a Redis that
// does not answer would otherwise hold the exit for its timeouts.
func (b *redisBackends) closeBy(deadline time.Time) error {
	done := make(chan error, 1)
	go func() { done <- b.close() }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errors.New("redis: not closed before the shutdown deadline")
	}
}
