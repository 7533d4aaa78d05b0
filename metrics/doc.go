// Package metrics exports what a streamsession service does as Prometheus
// metrics (github.com/prometheus/client_golang): sessions by state,
// transitions, refusals by error code, the limiter's latency, errors and
// fail-open admissions, and the open realtime sockets.
//
// The library itself imports no metrics system: session.Manager and
// server.Server offer hooks, and this package owns the families those hooks
// feed. Nothing in the core imports it.
//
// Where to start: New registers the families with a prometheus.Registerer
// and returns a Metrics; put Metrics.SessionHooks in session.Config.Hooks,
// Metrics.ServerHooks in server.Config.Hooks and, with the Redis limiter,
// Metrics.LimiterFailOpen in redislimiter.Config.OnFailOpen; then serve the
// registry with promhttp.HandlerFor. The Metrics type documents every
// family. To add structured logs to the same hooks, combine them with
// observe.JoinHooks.
//
// Concurrency: a Metrics is safe for concurrent use by multiple goroutines;
// its hooks are called synchronously by the Manager and the Server, and
// only add to counters (no lock held across a call, no allocation for the
// known label values).
package metrics
