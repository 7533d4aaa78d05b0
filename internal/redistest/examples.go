package redistest

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// AddrEnv is the environment variable ExamplesMain sets to its server's
// address: the runnable examples dial the Redis it names, as a program
// configured from its environment would.
const AddrEnv = "REDIS_ADDR"

// ExamplesMain is the testing.M of a package whose runnable examples need a
// Redis: its Run starts one redis-server for the whole test binary (examples
// have no testing.TB to start one of their own), sets AddrEnv to its address,
// runs the tests and examples, then stops the server. Wrap m with it in
// TestMain, naming the examples that need the server:
//
//	goleak.VerifyTestMain(redistest.ExamplesMain(m, "Example"))
//
// Without redis-server on PATH, Run skips the examples named (every other
// test runs, and those that need Redis skip as Start makes them), or fails
// the binary when the environment variable CI is non-empty. It is used by one
// goroutine, the one running TestMain.
func ExamplesMain(m *testing.M, examples ...string) interface{ Run() int } {
	return &examplesMain{m: m, examples: examples}
}

type examplesMain struct {
	m        *testing.M
	examples []string
}

// Run starts the server, runs m and stops the server; it returns m.Run's
// status, or 1 when the server cannot start.
func (e *examplesMain) Run() int {
	tb := &mainTB{}
	var srv *Server
	ran := make(chan struct{})
	go func() { // Skip and Fatal end this goroutine, as they end a test's
		defer close(ran)
		srv = Start(tb)
	}()
	<-ran
	defer tb.cleanup()
	switch {
	case tb.failed != "":
		fmt.Fprintln(os.Stderr, tb.failed)
		return 1
	case tb.skipped != "":
		fmt.Fprintf(os.Stderr, "%s; skipping %s\n", tb.skipped, strings.Join(e.examples, ", "))
		if !flag.Parsed() {
			flag.Parse()
		}
		skip := "^(" + strings.Join(e.examples, "|") + ")$"
		if f := flag.Lookup("test.skip"); f != nil {
			if old := f.Value.String(); old != "" {
				skip = old + "|" + skip
			}
			_ = f.Value.Set(skip)
		}
	default:
		if err := os.Setenv(AddrEnv, srv.Addr()); err != nil {
			fmt.Fprintf(os.Stderr, "redistest: %v\n", err)
			return 1
		}
	}
	return e.m.Run()
}

// mainTB is the testing.TB of ExamplesMain's server: the methods Start calls,
// with Skip and Fatal recorded and ending the calling goroutine.
type mainTB struct {
	testing.TB // nil: only the methods below are called

	mu       sync.Mutex
	cleanups []func()
	dirs     []string
	skipped  string
	failed   string
}

func (*mainTB) Helper() {}

func (t *mainTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

func (t *mainTB) TempDir() string {
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.mu.Lock()
	t.dirs = append(t.dirs, dir)
	t.mu.Unlock()
	return dir
}

func (t *mainTB) Skip(args ...any) {
	t.mu.Lock()
	t.skipped = fmt.Sprint(args...)
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *mainTB) Fatal(args ...any) {
	t.mu.Lock()
	t.failed = fmt.Sprint(args...)
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *mainTB) Fatalf(format string, args ...any) { t.Fatal(fmt.Sprintf(format, args...)) }

// cleanup runs the cleanups, last first, and removes the temporary
// directories.
func (t *mainTB) cleanup() {
	t.mu.Lock()
	cleanups, dirs := t.cleanups, t.dirs
	t.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}
