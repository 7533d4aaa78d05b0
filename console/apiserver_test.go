package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamsession/streamsession/console"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// Speech lengths of the test server: every task is short, except longTask,
// which lasts until the test interrupts it.
const (
	shortSpeech = 200 * time.Millisecond
	longSpeech  = 30 * time.Second
)

// apiServer is the test server, counting the API calls it receives.
type apiServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int // by "METHOD /v1/path"
	// media serves the sessions' media when the server was made withMedia;
	// nil otherwise.
	media *media.Engine
}

// serverOption changes the test server newAPIServer makes.
type serverOption int

// withMedia turns media on: streaming.new answers an sdp offer, on a UDP
// port of 127.0.0.1 (run such a test in a loopback-only namespace).
const withMedia serverOption = 1

// received returns how many times the server was called with method and
// path ("POST", "/v1/streaming.task").
func (s *apiServer) received(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method+" "+path]
}

// newAPIServer serves what examples/streaming serves, in process: the
// console at "/" and the Streaming API at "/v1/", on a session.Manager with
// the in-memory limiter and two demo accounts; withMedia adds the media
// engine with its synthetic avatar. The test's cleanup closes it
// all (closing the returned server early is allowed).
func newAPIServer(t *testing.T, opts ...serverOption) *apiServer {
	t.Helper()
	var eng *media.Engine
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	lim := limits.NewMemory(limits.MemoryConfig{Capacity: 10})
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars})
	if err != nil {
		t.Fatalf("session.NewManager: %v", err)
	}
	for _, o := range opts {
		if o == withMedia {
			eng, err = media.New(mgr, media.Config{UDPAddr: "127.0.0.1:0"})
			if err != nil {
				t.Fatalf("media.New: %v", err)
			}
		}
	}
	api, err := server.New(server.Config{
		Manager: mgr,
		Accounts: server.AccountsByKey{
			"demo-trial-key": {Name: "demo-trial", Plan: limits.TrialPlan},
			"demo-pro-key":   {Name: "demo-pro", Plan: limits.PaidPlan},
		},
		Avatars: avatars,
		Media:   eng,
		TaskDuration: func(text string) time.Duration {
			if text == longTask {
				return longSpeech
			}
			return shortSpeech
		},
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/", console.Handler(console.Options{DemoKeys: []console.DemoKey{
		{Name: "demo-trial", APIKey: "demo-trial-key"},
		{Name: "demo-pro", APIKey: "demo-pro-key"},
	}}))
	srv := &apiServer{calls: make(map[string]int), media: eng}
	srv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			srv.mu.Lock()
			srv.calls[r.Method+" "+r.URL.Path]++
			srv.mu.Unlock()
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The Manager first, so that connected clients get the closed
		// state, then the server's sockets, then the limiter.
		if err := mgr.Close(ctx); err != nil {
			t.Errorf("closing the manager: %v", err)
		}
		if err := api.Shutdown(ctx); err != nil {
			t.Errorf("shutting the server down: %v", err)
		}
		if eng != nil {
			if err := eng.Close(); err != nil {
				t.Errorf("closing the media engine: %v", err)
			}
		}
		if err := lim.Close(); err != nil {
			t.Errorf("closing the limiter: %v", err)
		}
	})
	return srv
}
