// Package bench is the performance suite of streamsession: Go
// benchmarks that measure the library and its peers, github.com/looplab/fsm
// used directly and github.com/qmuntal/stateless, in the same run, under
// names that stay the same from one version to the next so that results can
// be compared across versions with benchstat.
//
// It is a module of its own (github.com/streamsession/streamsession/bench,
// with a replace directive pointing at the repository root), so that the
// peers and golang.org/x/perf stay out of the library's go.mod, and so that
// go test ./... at the root never runs it.
//
// The package holds no exported API: everything is in its _test.go files.
//
//   - BenchmarkGuard: session.Guard.Check against looplab's Can.
//   - BenchmarkLifecycle, BenchmarkLifecycleParallel: create → start → join →
//     stop → closed through session.Manager, against the same five states on
//     a fresh looplab machine and a fresh stateless machine.
//   - BenchmarkOpenSessions: heap bytes and goroutines while 100,000 sessions
//     are open.
//   - BenchmarkHTTPTask: streaming.task through the whole HTTP stack against a
//     bare net/http handler writing the same JSON.
//   - BenchmarkRedisAcquireRelease, BenchmarkRedisPing: the Redis limiter
//     against PING, at 32 goroutines.
//   - TestScale (build tag scale): 10,000 realtime WebSocket sessions on one
//     in-process server.
//
// Where to start: the script run in this directory runs the suite, prints a
// benchstat table and the goal ratios (cmd/ratios); README.md says how to
// run each part.
package bench
