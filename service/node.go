package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/streamsession/streamsession/console"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/media/redisdir"
	"github.com/streamsession/streamsession/metrics"
	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/liveavatar"
	"github.com/streamsession/streamsession/session"
)

// adminMaxConnections caps the admin listener's connections: probes and
// scrapes need few.
const adminMaxConnections = 64

// Options adjust [New] with what a configuration file cannot say. The zero
// value is a silent node: no logs, no metrics.
type Options struct {
	// Server is the template of the server's configuration; New fills in
	// Manager, Accounts, Avatars, Origins (cors_origins), BodyReadTimeout,
	// RateLimit, BaseURL (public_url, when set) and
	// Idempotency.MaxKeysPerAccount (when zero) and Media (when the
	// configuration's media is enabled) from the configuration, and
	// the backends (Tokens,
	// Idempotency.Store, Relay, RateLimiter, Secret, Ready) it builds for
	// Redis. Tokens defaults to an in-memory store bounded by each plan's
	// MaxTokens, Idempotency.TTL to idempotency_ttl_seconds. Its Hooks are
	// kept, beside those of Logger and Registry.
	Server server.Config
	// Session is the template of the manager's configuration; New fills in
	// Limiter, Avatars, JoinTimeout, Retention and Store (Redis's, or when
	// nil a MemoryStore bounded by max_closed_per_account). Its
	// Hooks are kept, beside those of Logger and Registry.
	Session session.Config
	// Limiter replaces the limiter New would build (in memory, or Redis).
	// The Node does not close a Limiter given here.
	Limiter limits.Limiter
	// LeaseTTL is the lease lifetime of the in-memory limiter; zero takes
	// its default.
	LeaseTTL time.Duration
	// Logger, when set, receives the node's logs: refusals, limiter
	// failures, session transitions, sockets, the shutdown. It never
	// receives a token, an API key or a raw session id.
	Logger *slog.Logger
	// Registry, when set, receives the node's metrics (package metrics),
	// served at /metrics (see [Node.Handler]).
	Registry *prometheus.Registry
}

// Node is one node of a streamsession service, built by [New]: the
// limiter, the session manager and the HTTP server with its backends. Its
// fields are set by New and must not be changed. A Node is safe for
// concurrent use by multiple goroutines; it is ended once, by [Node.Serve]
// returning, or by [Node.Shutdown] or [Node.Drain] followed by
// [Node.Close].
type Node struct {
	Config  *Config
	Limiter limits.Limiter
	Manager *session.Manager
	Server  *server.Server
	// LiveAvatar serves LiveAvatar's API (/v1/sessions) beside the
	// Streaming API, over the same manager, accounts, secret and budgets.
	LiveAvatar *liveavatar.Handler
	// Media serves the sessions' avatar over WebRTC when the
	// configuration's media is enabled (server.Config.Media); nil otherwise.
	Media *media.Engine

	opts       Options
	logger     *slog.Logger // never nil
	met        *metrics.Metrics
	rds        *redisBackends
	ownLimiter bool
	adminLn    net.Listener // admin_addr (or -metrics-addr), nil when unset
	handler    http.Handler
	adminMux   *http.ServeMux

	ended     atomic.Bool // Shutdown or Drain began
	closeOnce sync.Once
	closeErr  error
}

// New builds a node for cfg: with cfg.Redis.Addr set it connects to Redis
// (failing when Redis does not answer within a few seconds, or ctx ends)
// and builds every backend on one client; otherwise everything is in
// memory. With cfg.AdminAddr (or cfg.MetricsAddr) set it binds that
// address. Nothing is served
// yet: see [Node.Serve] or [Node.Handler]. On error nothing is left open.
func New(ctx context.Context, cfg *Config, opts Options) (n *Node, err error) {
	n = &Node{Config: cfg, opts: opts, logger: opts.Logger, Limiter: opts.Limiter}
	if n.logger == nil {
		n.logger = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			n.Close()
			n = nil
		}
	}()
	if opts.Registry != nil {
		// The one place the backend label is set.
		backend := metrics.DefaultBackend
		if cfg.Redis.Addr != "" {
			backend = "redis"
		}
		if n.met, err = metrics.New(opts.Registry, metrics.Config{Backend: backend}); err != nil {
			return n, err
		}
	}
	if cfg.Redis.Addr != "" {
		if n.rds, err = openRedis(ctx, cfg, n); err != nil {
			return n, err
		}
	}
	if n.Limiter == nil {
		if n.rds != nil {
			n.Limiter = n.rds.limiter
		} else {
			n.Limiter = limits.NewMemory(limits.MemoryConfig{Capacity: cfg.Capacity, LeaseTTL: opts.LeaseTTL})
			n.ownLimiter = true
		}
	}
	if n.Manager, err = session.NewManager(n.sessionConfig()); err != nil {
		return n, err
	}
	if cfg.Media.Enabled {
		if n.Media, err = n.newMedia(); err != nil {
			return n, err
		}
	}
	scfg := n.serverConfig()
	if n.Server, err = server.New(scfg); err != nil {
		return n, err
	}
	// LiveAvatar's refusals and sockets reach the server's metrics and logs.
	hooks := scfg.Hooks
	if n.LiveAvatar, err = liveavatar.New(liveavatar.Config{
		Manager: n.Manager, Accounts: scfg.Accounts, Secret: scfg.Secret, Allow: n.Server.Allow,
		Origins: scfg.Origins, BaseURL: scfg.BaseURL, BodyReadTimeout: scfg.BodyReadTimeout,
		Hooks: liveavatar.Hooks{
			Refused: hooks.Refused, SocketOpened: hooks.SocketOpened, SocketClosed: hooks.SocketClosed,
		},
	}); err != nil {
		return n, err
	}
	if opts.Logger != nil {
		// Transitions are logged from a subscription (its own goroutine),
		// so a slow log never holds a session.
		n.Manager.Subscribe(observe.SessionHooks(opts.Logger).OnTransition)
	}
	adminAddr, err := cfg.adminAddr()
	if err != nil {
		return n, err
	}
	if adminAddr != "" {
		if n.adminLn, err = net.Listen("tcp", adminAddr); err != nil {
			return n, err
		}
	}
	n.handler = n.newHandler()
	return n, nil
}

// sessionConfig is the manager's configuration: the template, the file's
// keys and the node's backends and hooks.
func (n *Node) sessionConfig() session.Config {
	c := n.opts.Session
	c.Limiter = n.Limiter
	c.Avatars = n.Config.Avatars
	c.JoinTimeout = n.Config.JoinTimeout
	c.Retention = n.Config.ClosedRetention
	if n.rds != nil {
		c.Store = n.rds.store
	} else if c.Store == nil {
		c.Store = session.NewMemoryStore(session.MemoryStoreConfig{MaxClosedPerAccount: n.Config.MaxClosedPerAccount})
	}
	hooks := []session.Hooks{c.Hooks}
	if n.met != nil {
		hooks = append(hooks, n.met.SessionHooks())
	}
	if n.opts.Logger != nil {
		// Transitions are logged from a subscription (see New).
		log := observe.SessionHooks(n.opts.Logger)
		hooks = append(hooks, session.Hooks{OnRefused: log.OnRefused, OnLimiter: log.OnLimiter})
	}
	c.Hooks = observe.JoinHooks(hooks...)
	return c
}

// newMedia builds the media engine of the configuration's media object, on
// the manager: with Redis its peers are recorded in Redis under node_url,
// which is then required (the listen address is not known here, and a
// wildcard or loopback one would not tell other nodes where to go).
func (n *Node) newMedia() (*media.Engine, error) {
	m := n.Config.Media
	mcfg := media.Config{
		UDPAddr:    m.UDPAddr,
		PublicIP:   m.PublicIP,
		ICEServers: m.ICEServers,
		HoldFor:    n.Config.JoinTimeout,
		Hooks:      n.mediaHooks(),
	}
	if n.rds != nil {
		if m.NodeURL == "" {
			return nil, errors.New("config: media.node_url (-media-node-url) is required with Redis when media is enabled: the base URL other nodes reach this node at (or turn media off: media.enabled false, -media=false)")
		}
		prefix := redisdir.DefaultPrefix
		if p := n.Config.Redis.Prefix; p != "" {
			prefix = p + ":media:"
		}
		mcfg.Directory = redisdir.New(n.rds.client, redisdir.Config{Prefix: prefix})
		mcfg.NodeURL = m.NodeURL
	}
	eng, err := media.New(n.Manager, mcfg)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	return eng, nil
}

// mediaHooks logs the failures of the engine's own work (with the
// session's short hash, never its id); peer states are not logged, being
// routine.
func (n *Node) mediaHooks() media.Hooks {
	if n.opts.Logger == nil {
		return media.Hooks{}
	}
	logger := n.opts.Logger
	return media.Hooks{
		Error: func(sessionHash, op string, err error) {
			logger.Warn("media: background work failed", "session", sessionHash, "op", op, "err", err)
		},
	}
}

// serverConfig is the server's configuration: the template, the file's
// keys and the node's backends and hooks.
func (n *Node) serverConfig() server.Config {
	c := n.opts.Server
	cfg := n.Config
	c.Manager = n.Manager
	c.Accounts = cfg.AccountsByKey()
	c.Avatars = cfg.Avatars
	c.Origins = cfg.CORSOrigins
	c.BodyReadTimeout = cfg.BodyReadTimeout
	c.RateLimit = cfg.RateLimit()
	if n.Media != nil {
		c.Media = n.Media
	}
	if cfg.PublicURL != "" {
		c.BaseURL = cfg.PublicURL
	}
	if c.Idempotency.MaxKeysPerAccount == 0 {
		c.Idempotency.MaxKeysPerAccount = cfg.IdempotencyMaxKeysPerAccount
	}
	if cfg.Secret != nil {
		c.Secret = cfg.Secret
	}
	if n.rds != nil {
		c.Tokens = n.rds.tokens
		c.Idempotency.Store = n.rds.idem
		c.Secret = n.rds.secret
		c.Relay = n.rds.relay
		c.RateLimiter = n.rds.rates
		// /readyz: this node can take work while Redis answers and holds
		// this node's secret.
		c.Ready = n.rds.ready
	}
	if c.Tokens == nil {
		tcfg := server.MemoryTokensConfig{TTL: c.TokenTTL, MaxPerAccount: MaxTokensPerAccount}
		if c.Clock != nil {
			tcfg.Now = c.Clock.Now
		}
		c.Tokens = server.NewMemoryTokens(tcfg)
	}
	if c.Idempotency.TTL == 0 {
		c.Idempotency.TTL = cfg.IdempotencyTTL
	}
	if n.opts.Logger != nil && c.Idempotency.FinishFailed == nil {
		logger := n.opts.Logger
		c.Idempotency.FinishFailed = func(err error) {
			logger.Warn("idempotency: the answer of streaming.new was not recorded", "err", err)
		}
	}
	hooks := []server.Hooks{c.Hooks}
	if n.met != nil {
		hooks = append(hooks, n.met.ServerHooks())
	}
	if n.opts.Logger != nil {
		hooks = append(hooks, observe.ServerHooks(n.opts.Logger))
	}
	c.Hooks = observe.JoinServerHooks(hooks...)
	return c
}

// Handler returns the node's HTTP handler: the Streaming API under /v1/
// and LiveAvatar's under /v1/sessions (each request bounded by
// RedisConfig.RequestTimeout with Redis), the probes /healthz and /readyz,
// /metrics when Options.Registry is set and no admin address is, and the
// live session console at /, which offers the demo's keys only for the
// built-in demo configuration.
func (n *Node) Handler() http.Handler { return n.handler }

func (n *Node) newHandler() http.Handler {
	mux := http.NewServeMux()
	var api http.Handler = n.Server
	if n.rds != nil {
		api = n.rds.handler(api)
	}
	mux.Handle("/v1/", api)
	var la http.Handler = n.LiveAvatar
	if n.rds != nil {
		la = n.rds.handler(la)
	}
	mux.Handle("/v1/sessions", la)
	mux.Handle("/v1/sessions/", la)
	health := n.Server.Health()
	mux.Handle(server.PathHealthz, health)
	mux.Handle(server.PathReadyz, health)
	if n.opts.Registry != nil && n.adminLn == nil {
		mux.Handle("/metrics", n.metricsHandler())
	}
	if n.adminLn != nil {
		n.adminMux = http.NewServeMux()
		n.adminMux.Handle(server.PathHealthz, health)
		n.adminMux.Handle(server.PathReadyz, health)
		if n.opts.Registry != nil {
			n.adminMux.Handle("/metrics", n.metricsHandler())
		}
	}
	var keys []console.DemoKey
	if n.Config.IsDemo() {
		for _, a := range n.Config.Accounts {
			keys = append(keys, console.DemoKey{Name: a.Name, APIKey: a.APIKey})
		}
	}
	mux.Handle("/", console.Handler(console.Options{DemoKeys: keys}))
	return mux
}

func (n *Node) metricsHandler() http.Handler {
	return promhttp.HandlerFor(n.opts.Registry, promhttp.HandlerOpts{})
}

// AdminAddr returns the address /healthz, /readyz and /metrics are served
// on apart from the API when cfg.AdminAddr (or cfg.MetricsAddr) is set (its
// port resolved), and nil otherwise.
func (n *Node) AdminAddr() net.Addr {
	if n.adminLn == nil {
		return nil
	}
	return n.adminLn.Addr()
}

// MetricsAddr is AdminAddr, under the name of the older -metrics-addr.
func (n *Node) MetricsAddr() net.Addr { return n.AdminAddr() }

// Shutdown ends a node that runs alone: it closes every session (connected
// clients receive closing and closed, every slot is freed), then
// LiveAvatar's and the realtime sockets, then releases the media peers and
// the backends (see [Node.Close]). Stop the
// HTTP listener first, or meanwhile, so that no new session arrives. When
// ctx ends first, the sockets left are dropped and ctx's error is returned.
func (n *Node) Shutdown(ctx context.Context) error {
	n.ended.Store(true)
	errMgr := n.Manager.Close(ctx)
	errLA := n.LiveAvatar.Shutdown(ctx)
	errSrv := n.Server.Shutdown(ctx)
	return errors.Join(errMgr, errLA, errSrv, n.closeBy(deadline(ctx)))
}

// deadline is ctx's deadline, or a second from now.
func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Second)
}

// Drain ends one node of a multi-node service without ending its sessions,
// whose state is in Redis: /readyz answers 503 and every realtime socket
// (LiveAvatar's too) is closed with 1012 (its client reopens it through
// another node); the node's media sessions, whose peers cannot move, are
// given three quarters of ctx's time to end and the rest are closed with
// reason shutdown; then the
// Manager leaves (its loops stop; no session changes state, no slot is
// freed), and the backends are released (see [Node.Close]). Stop the HTTP
// listener before the call, or use [Node.Serve], which keeps serving HTTP
// for ShutdownConfig.DrainDelay in between.
func (n *Node) Drain(ctx context.Context) error {
	n.ended.Store(true)
	if n.met != nil {
		n.met.DrainStarted()
	}
	errDrain := n.Server.Drain(ctx)
	errLA := n.LiveAvatar.Drain(ctx)
	errMedia := n.drainMedia(ctx, time.Now().Add(time.Until(deadline(ctx))*3/4))
	return errors.Join(errDrain, errLA, errMedia, n.leave(ctx), n.closeBy(deadline(ctx)))
}

// drainMedia lets this node's media sessions end until the time given,
// then closes those left with reason shutdown: a peer connection cannot
// move to another node. The time after it is left to the leave.
func (n *Node) drainMedia(ctx context.Context, until time.Time) error {
	if n.Media == nil {
		return nil
	}
	mctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	err := n.Media.Drain(mctx)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// The media's own bound passed: the sessions left were closed
		// (shutdown), as a drain does.
		n.logger.Info("media sessions closed at the drain timeout")
		return nil
	}
	return err
}

// leave is the end of a drain once the Streaming API's sockets are gone:
// LiveAvatar's sockets close (1001; their clients reconnect through another
// node) and the Server's subscriptions end at once, then the Manager hands
// its sessions over through Redis.
func (n *Node) leave(ctx context.Context) error {
	errLA := n.LiveAvatar.Shutdown(ctx)
	errSrv := n.Server.Shutdown(ctx)
	errMgr := n.Manager.Leave(ctx)
	return errors.Join(errLA, errSrv, errMgr)
}

// Close releases what New opened beside the manager and the server: the
// media engine (its peers and UDP port), the in-memory limiter, the Redis backends and their client, the metrics
// listener. Shutdown, Drain and Serve call it; call it yourself for a node
// you built and never served. A node that neither shut down nor drained is
// shut down first, for at most a second; Redis gets at most a second too.
// Calls after the first return its result.
func (n *Node) Close() error {
	return n.closeBy(time.Now().Add(time.Second))
}

// closeBy is Close giving Redis until deadline.
func (n *Node) closeBy(deadline time.Time) error {
	n.closeOnce.Do(func() { n.closeErr = n.close(deadline) })
	return n.closeErr
}

func (n *Node) close(redisDeadline time.Time) error {
	var errs []error
	if !n.ended.Load() && n.Manager != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		errs = append(errs, n.Manager.Close(ctx))
		if n.LiveAvatar != nil {
			errs = append(errs, n.LiveAvatar.Shutdown(ctx))
		}
		if n.Server != nil {
			errs = append(errs, n.Server.Shutdown(ctx))
		}
		cancel()
	}
	if n.Media != nil {
		// After the manager and the server: the sessions are closed (or
		// left), so closing the peers changes none.
		errs = append(errs, n.Media.Close())
	}
	if n.adminLn != nil {
		_ = n.adminLn.Close()
	}
	if n.ownLimiter && n.Limiter != nil {
		errs = append(errs, n.Limiter.Close())
	}
	if n.rds != nil {
		errs = append(errs, n.rds.closeBy(redisDeadline))
	}
	return errors.Join(errs...)
}

// Run listens on addr and serves the node there (see [Node.Serve]).
func (n *Node) Run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		n.Close()
		return err
	}
	return n.Serve(ctx, ln)
}

// Serve serves [Node.Handler] on ln, keeping at most cfg.MaxConnections
// connections open (idle ones are shed first), and the admin endpoints on
// cfg.AdminAddr, until ctx ends, then ends the node within ShutdownConfig.DrainTimeout
// and closes it; the Node is done when Serve returns.
//
// Alone (in memory) it closes every session (reason shutdown: connected
// clients receive closing and closed, then a close frame) and frees every
// slot, while the listener stops: a connection that carries no request is
// closed at once, a request in flight gets RequestGrace. With Redis it
// drains instead: /readyz answers 503, every realtime socket is closed with
// 1012, HTTP is served for DrainDelay more, and the node leaves without
// changing any session. Serve returns nil after a clean end, and an error
// when the listener failed or the node could not end within DrainTimeout.
func (n *Node) Serve(ctx context.Context, ln net.Listener) error {
	shut := n.Config.Shutdown.withDefaults()
	conns := newConnTracker()
	lim := server.LimitConnections(ln, n.Config.MaxConnections)
	if n.opts.Registry != nil {
		if err := n.opts.Registry.Register(observe.ConnCollector(lim)); err != nil {
			n.logger.Warn("metrics: the connection collector is not registered", "err", err)
		}
	}
	// The header and idle timeouts and MaxHeaderBytes are server's
	// defaults (10 s, 2 min, 64 KiB).
	hs := server.NewHTTPServer(n.handler, server.HTTPConfig{
		Limiter:   lim,
		ConnState: conns.track,
		ErrorLog:  slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn),
	})
	served := make(chan error, 1)
	go func() { served <- hs.Serve(lim) }()
	if n.adminLn != nil {
		alim := server.LimitConnections(n.adminLn, adminMaxConnections)
		as := server.NewHTTPServer(n.adminMux, server.HTTPConfig{
			Limiter:  alim,
			ErrorLog: slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn),
		})
		go func() { _ = as.Serve(alim) }()
		defer as.Close()
		n.logger.Info("admin endpoints listening", "addr", n.adminLn.Addr().String())
	}
	n.logger.Info("listening", "addr", ln.Addr().String(), "accounts", len(n.Config.Accounts),
		"capacity", n.Config.Capacity, "max_connections", lim.Max())

	h := &httpStop{hs: hs, conns: conns, served: served, grace: shut.RequestGrace, logger: n.logger}
	select {
	case <-ctx.Done():
	case err := <-served:
		_ = n.Shutdown(context.Background())
		n.Close()
		return err
	}
	start := time.Now()
	var err error
	if n.rds != nil {
		err = n.serveDrain(shut, h)
	} else {
		err = n.serveShutdown(shut, h)
	}
	// Redis is closed within the same bound, not Close's second.
	if errClose := n.closeBy(start.Add(shut.DrainTimeout)); errClose != nil {
		n.logger.Warn("closing the node's backends", "err", errClose)
	}
	if err != nil {
		return err
	}
	n.logger.Info("stopped", "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// serveShutdown ends a node that runs alone: nothing would survive it, so
// it closes every session. The session work does not wait for the
// listener: the listener stops at the same time, so a client that holds a
// silent connection cannot hold the shutdown. It fails only when the
// sessions could not be closed within DrainTimeout.
func (n *Node) serveShutdown(shut ShutdownConfig, h *httpStop) error {
	n.logger.Info("shutting down", "timeout", shut.DrainTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), shut.DrainTimeout)
	defer cancel()
	httpDone := h.stop(ctx)
	err := n.Shutdown(ctx)
	<-httpDone
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// serveDrain ends one node of a multi-node service (see [Node.Drain]),
// serving HTTP until the sockets are gone and DrainDelay has passed. Redis
// is closed afterwards, within the same bound: the drain gets nine tenths
// of it.
func (n *Node) serveDrain(shut ShutdownConfig, h *httpStop) error {
	n.ended.Store(true)
	start := time.Now()
	if n.met != nil {
		n.met.DrainStarted()
	}
	n.logger.Info("draining", "timeout", shut.DrainTimeout, "delay", shut.DrainDelay)
	ctx, cancel := context.WithTimeout(context.Background(), shut.DrainTimeout*9/10)
	defer cancel()
	// Each answer from now on closes its connection, so that clients and
	// load balancers reconnect to the nodes that stay.
	h.hs.SetKeepAlivesEnabled(false)
	delay := time.NewTimer(shut.DrainDelay)
	defer delay.Stop()
	errDrain := n.Server.Drain(ctx)
	errLA := n.LiveAvatar.Drain(ctx)
	n.logger.Info("sockets drained", "elapsed", time.Since(start).Round(time.Millisecond), "err", errors.Join(errDrain, errLA))
	if err := n.drainMedia(ctx, start.Add(shut.DrainTimeout*3/4)); err != nil {
		n.logger.Warn("media drain", "err", err)
	}
	select {
	case <-delay.C:
	case <-ctx.Done():
	}
	<-h.stop(ctx)
	if err := n.leave(ctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// httpStop is what stopping a node's HTTP server works on.
type httpStop struct {
	hs     *http.Server
	conns  *connTracker
	served chan error
	grace  time.Duration
	logger *slog.Logger
}

// stop stops the listener and closes every connection that carries no
// request at once; a request in flight gets the grace (within ctx) to
// finish, then its connection is closed. The channel is closed when the
// HTTP server has stopped.
func (h *httpStop) stop(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		gctx, cancel := context.WithTimeout(ctx, h.grace)
		defer cancel()
		shut := make(chan error, 1)
		go func() { shut <- h.hs.Shutdown(gctx) }()
		h.conns.closeQuiet()
		if err := <-shut; err != nil {
			// Requests still in flight: cut them.
			h.logger.Warn("requests cut at shutdown", "grace", h.grace, "active", h.conns.active())
			_ = h.hs.Close()
		}
		if err := <-h.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.logger.Warn("http server", "err", err)
		}
	}()
	return done
}
