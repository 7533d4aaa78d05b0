package observe_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// benchNode is one node of BenchmarkHardening: a Server over a real
// Manager on a loopback listener, with a connected session whose realtime
// socket is read by a goroutine.
type benchNode struct {
	base   string
	client *http.Client
	sid    string
	close  func()
}

const benchKey = "sk-bench-acme-3f9a1c7e5b2d4068"

// newBenchNode starts a node. hardened serves it with NewHTTPServer on a
// ConnLimiter (the default cap) and logs through an AsyncHandler; else
// with a plain http.Server (the timeouts of examples/streaming) and a
// synchronous handler. Both log to io.Discard in JSON.
func newBenchNode(b *testing.B, hardened bool) *benchNode {
	b.Helper()
	ctx := context.Background()
	var handler slog.Handler = slog.NewJSONHandler(io.Discard, nil)
	var async *observe.AsyncHandler
	if hardened {
		async = observe.NewAsyncHandler(handler, observe.AsyncConfig{})
		handler = async
	}
	logger := slog.New(handler)
	lim := limits.NewMemory(limits.MemoryConfig{Capacity: 100})
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: testAvatars, Hooks: observe.SessionHooks(logger)})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Manager:  mgr,
		Accounts: server.AccountsByKey{benchKey: {Name: "acme", Plan: limits.PaidPlan}},
		Avatars:  testAvatars,
		Hooks:    observe.ServerHooks(logger),
		// Tasks come back to back: a long queue keeps the socket.
		Realtime: realtime.SocketConfig{SendQueue: 1 << 14},
	})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var hs *http.Server
	served := make(chan struct{})
	if hardened {
		cl := server.LimitConnections(ln, 0)
		hs = server.NewHTTPServer(mux, server.HTTPConfig{Limiter: cl})
		go func() { defer close(served); _ = hs.Serve(cl) }()
	} else {
		hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() { defer close(served); _ = hs.Serve(ln) }()
	}
	n := &benchNode{
		base:   "http://" + ln.Addr().String(),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}},
	}

	var created struct {
		SessionID        string `json:"session_id"`
		RealtimeEndpoint string `json:"realtime_endpoint"`
	}
	n.must(b, n.call(http.MethodPost, server.PathNew, benchKey, `{}`, &created))
	n.sid = created.SessionID
	n.must(b, n.call(http.MethodPost, server.PathStart, benchKey, `{"session_id":"`+n.sid+`"}`, nil))
	ws, resp, err := websocket.DefaultDialer.Dial(created.RealtimeEndpoint, nil)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	read := make(chan struct{})
	go func() {
		defer close(read)
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	n.close = func() {
		ws.Close()
		<-read
		n.client.CloseIdleConnections()
		hs.Close()
		<-served
		srv.Close()
		mgr.Close(ctx)
		lim.Close()
		if async != nil {
			async.Close(ctx)
		}
	}
	return n
}

func (n *benchNode) must(b *testing.B, status int) {
	b.Helper()
	if status != http.StatusOK {
		b.Fatalf("status %d", status)
	}
}

// call sends one request and returns its status, decoding the data of a
// success into v when v is not nil.
func (n *benchNode) call(method, path, key, body string, v any) int {
	req, _ := http.NewRequest(method, n.base+path, strings.NewReader(body))
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if v == nil || resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&env) != nil || json.Unmarshal(env.Data, v) != nil {
		return 0
	}
	return resp.StatusCode
}

// BenchmarkHardening measures what the connection cap (ConnLimiter, with
// its ConnState hook on every request) and the asynchronous log cost on
// the HTTP path: each op sends the same request to a plain node and to a
// hardened one, alternating which goes first, and times each; the ratio
// hardened/plain of the same run is reported (1.00: no cost).
//
//   - task: streaming.task on a connected session (its two realtime events
//     read by the client), logging nothing.
//   - refused: GET streaming.list with a wrong API key, answered 401 and
//     logged (one line each) by observe.ServerHooks.
func BenchmarkHardening(b *testing.B) {
	for _, tc := range []struct {
		name   string
		status int
		send   func(n *benchNode) int
	}{
		{"task", http.StatusOK, func(n *benchNode) int {
			return n.call(http.MethodPost, server.PathTask, benchKey, `{"session_id":"`+n.sid+`","text":"Hello, world"}`, nil)
		}},
		{"refused", http.StatusUnauthorized, func(n *benchNode) int {
			return n.call(http.MethodGet, server.PathList, "sk-wrong", "", nil)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			plain, hard := newBenchNode(b, false), newBenchNode(b, true)
			defer plain.close()
			defer hard.close()
			var plainNs, hardNs time.Duration
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				first, second := plain, hard
				if i%2 == 1 {
					first, second = hard, plain
				}
				t0 := time.Now()
				s1 := tc.send(first)
				t1 := time.Now()
				s2 := tc.send(second)
				t2 := time.Now()
				if s1 != tc.status || s2 != tc.status {
					b.Fatalf("statuses %d, %d; want %d", s1, s2, tc.status)
				}
				if first == plain {
					plainNs, hardNs = plainNs+t1.Sub(t0), hardNs+t2.Sub(t1)
				} else {
					hardNs, plainNs = hardNs+t1.Sub(t0), plainNs+t2.Sub(t1)
				}
			}
			b.ReportMetric(float64(plainNs.Nanoseconds())/float64(b.N), "plain-ns/req")
			b.ReportMetric(float64(hardNs.Nanoseconds())/float64(b.N), "hardened-ns/req")
			b.ReportMetric(float64(hardNs)/float64(plainNs), "hardened/plain")
		})
	}
}
