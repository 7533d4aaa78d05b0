// Package observe turns the hooks of a session.Manager and of a
// server.Server into structured logs with log/slog, and combines several
// sets of hooks into one.
//
// The library does not log: it returns errors and calls hooks. A program
// (examples/streaming) chooses its slog.Handler (text or JSON) and installs
// the hooks of this package. Each line carries the account name, a session
// reference (SessionRef: a short hash of the session id) and, for a
// refusal, the catalog code and message; never a raw session id, an access
// or bearer token, or an API key. Free text that could carry one (a limiter
// error, a request path) goes through Redact first.
//
// Where to start: SessionHooks for session.Config.Hooks and ServerHooks for
// server.Config.Hooks, each documenting its lines; JoinHooks and
// JoinServerHooks to install them next to others, such as the hooks of a
// metrics.Metrics:
//
//	met, _ := metrics.New(registry, metrics.Config{})
//	cfg.Hooks = observe.JoinHooks(met.SessionHooks(), observe.SessionHooks(logger))
//
// A log must never hold the service: NewAsyncHandler puts records in a
// bounded buffer that one goroutine hands to the real handler, dropping and
// counting (streamsession_log_records_dropped_total) what does not fit, so
// a stalled reader of stderr costs log lines, not requests or sockets; and
// NewRoutineLimiter bounds per account the routine lines (refusals,
// transitions, sockets), so a churning client cannot fill a disk. A node
// stacks them:
//
//	async := observe.NewAsyncHandler(slog.NewJSONHandler(os.Stderr, nil), observe.AsyncConfig{})
//	defer async.Close(ctx)
//	logger := slog.New(observe.NewRoutineLimiter(async, observe.RoutineConfig{}))
//
// Concurrency: every function is safe for concurrent use by multiple
// goroutines, and so are the hooks it returns (a slog.Logger is). The
// hooks call the logger synchronously: see SessionHooks for keeping a slow
// handler off the transition path.
package observe
