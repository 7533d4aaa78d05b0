// Package streamsession keeps streaming-avatar sessions honest: a Go library,
// and a server built on it, for a HeyGen-compatible Streaming Avatar API. The
// root package holds no code; the library lives in its subpackages:
//
//   - errors: the error catalog and the JSON wire format (imported as sserrors);
//   - fsm: the session lifecycle and the command policy;
//   - limits: the Limiter interface and the in-memory limiter
//     (limits/redislimiter: the Redis one);
//   - session: the Manager that runs sessions, and the client-side Guard;
//   - server: the HTTP API and the realtime WebSocket;
//   - service: one node of a service, built from its JSON configuration
//     (in memory, or with Redis), run and drained;
//   - console: the browser console that drives a session through the API;
//   - metrics and observe: Prometheus metrics and slog logs from the hooks;
//   - examples/streaming: the runnable server.
//
// Where to start: session.NewManager, then server.New to serve it.
//
// go generate in this directory writes the session machine's diagram into
// README.md; the package's test fails when the README drifts from the code.
package streamsession

//go:generate go run ./internal/cmd/readmediagram
