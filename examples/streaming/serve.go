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

// shutdownTimeout bounds the graceful shutdown after SIGINT or SIGTERM.
const shutdownTimeout = 5 * time.Second

type serveOptions struct {
	Addr       string
	ConfigPath string
	// MetricsAddr, when set, serves /metrics on its own listener instead of
	// on Addr.
	MetricsAddr string
	// Redis, when its Addr is set, puts the limiter, the sessions and the
	// bearer tokens in Redis (see redis.go).
	Redis redisOptions
	// CORSOrigins, when not nil (-cors-origin given), replaces the
	// configuration's cors_origins.
	CORSOrigins []string
}

// serve runs the server until ctx is done, then shuts it down gracefully.
func serve(ctx context.Context, opts serveOptions, stdout io.Writer, logger *slog.Logger) error {
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
	if opts.Redis.Addr != "" {
		if rds, err = openRedis(ctx, opts.Redis, cfg); err != nil {
			return err
		}
		defer rds.close() // after svc.Shutdown
		rds.apply(&svcOpts)
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
		metricsServer = &http.Server{Handler: mmux, ReadHeaderTimeout: 10 * time.Second}
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
	if metricsServer == nil {
		mux.Handle("/metrics", metricsHandler)
	}
	mux.Handle("/", consolePage(cfg, opts.ConfigPath == ""))
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	printBanner(stdout, base, cfg, opts.ConfigPath == "")
	logger.Info("listening", "addr", ln.Addr().String(), "accounts", len(cfg.Accounts), "capacity", cfg.Capacity)

	select {
	case <-ctx.Done():
	case err := <-served:
		_ = svc.Shutdown(context.Background())
		return err
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Stop accepting and let requests in flight finish, then close every
	// session (sockets receive closing and closed), the sockets and the
	// limiter.
	errHTTP := hs.Shutdown(sctx)
	errSvc := svc.Shutdown(sctx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		errHTTP = errors.Join(errHTTP, err)
	}
	if err := errors.Join(errHTTP, errSvc); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
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
