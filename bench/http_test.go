package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/service"
)

// taskText is what every benchmarked task says (770 ms of simulated
// speech: each task cuts the previous one short).
const taskText = "Hello, world"

// httpSendQueue is the realtime send queue of BenchmarkHTTPTask's server.
const httpSendQueue = 1 << 14

// BenchmarkHTTPTask is one streaming.task per op from one keep-alive
// http.Client over loopback to a real httptest.Server, one request at a
// time.
//
// streamsession: the whole stack (a service.Node: X-Api-Key
// authentication, body limit and validation, the session Manager, simulated
// speech) on a session that is connected, with its realtime socket open and
// read by a goroutine, so that the avatar_start_talking and
// avatar_stop_talking events every task produces are delivered and consumed.
//
// bare: a net/http handler on the same kind of server and client that reads
// the same request, decodes its JSON and writes the same JSON answer (the
// success envelope with a fresh task id and the duration).
//
// Goal: streamsession's throughput ≥ 0.5× bare's.
func BenchmarkHTTPTask(b *testing.B) {
	b.Run("streamsession", benchHTTPTaskStreamsession)
	b.Run("bare", benchHTTPTaskBare)
}

func benchHTTPTaskStreamsession(b *testing.B) {
	ctx := context.Background()
	// One client sends tasks back to back here, thousands a second, each
	// producing two realtime events; the default send queue (64 messages)
	// drops a socket that falls 32 tasks behind, which a reader that keeps
	// up still does on a loaded 2-core machine. A longer queue keeps the
	// socket, so that every event is delivered and its cost measured.
	opts := service.Options{Server: server.Config{Realtime: realtime.SocketConfig{SendQueue: httpSendQueue}}}
	// Media off: this measures the task path as every earlier run did (a
	// session started without an SDP answer has no peer anyway).
	cfg := service.Demo()
	cfg.Media.Enabled = false
	svc, err := service.New(context.Background(), cfg, opts)
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", svc.Server)
	ts := httptest.NewServer(mux)
	c := newAPIClient(ts.URL, "demo-pro-key", 2)
	defer func() {
		c.close()
		ts.Close()
		if err := svc.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	}()

	s, err := c.startSession(ctx)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := dialRealtime(ctx, websocket.DefaultDialer, s)
	if err != nil {
		b.Fatal(err)
	}
	var started atomic.Int64
	type readerEnd struct {
		last string // the last state received
		err  error  // the read error that ended it
	}
	readerDone := make(chan readerEnd, 1)
	go func() {
		// Read every event until the socket closes; report the last state.
		var end readerEnd
		defer func() { readerDone <- end }()
		for {
			var msg realtimeMessage
			if err := conn.ReadJSON(&msg); err != nil {
				end.err = err
				_ = conn.Close()
				return
			}
			switch msg.Type {
			case realtime.TypeStartTalking:
				started.Add(1)
			case realtime.TypeStateUpdated:
				end.last = msg.State
			}
		}
	}()

	body := map[string]string{"session_id": s.SessionID, "text": taskText}
	var tasks int64
	b.ReportAllocs()
	for b.Loop() {
		if err := c.post(ctx, server.PathTask, body, nil); err != nil {
			b.Fatal(err)
		}
		tasks++
	}
	b.StopTimer()

	// Every task was announced on the socket before the session closed: the
	// socket's queue is in order, so once closed arrives, every
	// avatar_start_talking has.
	if err := c.post(ctx, server.PathStop, map[string]string{"session_id": s.SessionID}, nil); err != nil {
		b.Fatal(err)
	}
	select {
	case end := <-readerDone:
		if end.last != "closed" {
			b.Fatalf("the socket's last state = %q (read error %v), want closed", end.last, end.err)
		}
	case <-time.After(time.Minute):
		b.Fatal("the realtime socket did not close within a minute of streaming.stop")
	}
	if got := started.Load(); got != tasks {
		b.Fatalf("avatar_start_talking events = %d, want %d (one per task)", got, tasks)
	}
}

func benchHTTPTaskBare(b *testing.B) {
	ctx := context.Background()
	duration := realtime.DefaultTaskDuration(taskText).Milliseconds()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			SessionID string `json:"session_id"`
			Text      string `json:"text"`
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil || json.Unmarshal(raw, &req) != nil || req.SessionID == "" || strings.TrimSpace(req.Text) == "" {
			http.Error(w, `{"code":40001,"message":"Missing required input parameters"}`, http.StatusBadRequest)
			return
		}
		out, _ := json.Marshal(struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    any    `json:"data"`
		}{100, "success", struct {
			TaskID     string `json:"task_id"`
			DurationMS int64  `json:"duration_ms"`
		}{bareTaskID(), duration}})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	mux := http.NewServeMux()
	mux.Handle(server.PathTask, handler)
	ts := httptest.NewServer(mux)
	c := newAPIClient(ts.URL, "demo-pro-key", 2)
	defer func() {
		c.close()
		ts.Close()
	}()
	body := map[string]string{"session_id": "0123456789abcdef0123456789abcdef", "text": taskText}
	var data struct {
		TaskID     string `json:"task_id"`
		DurationMS int64  `json:"duration_ms"`
	}
	if err := c.post(ctx, server.PathTask, body, &data); err != nil || data.DurationMS != duration || len(data.TaskID) != 36 {
		b.Fatalf("bare task = %+v, %v; want a task id and %d ms", data, err, duration)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.post(ctx, server.PathTask, body, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// bareTaskID returns a random UUID-shaped task id, as the server's are.
func bareTaskID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	var s bytes.Buffer
	s.Grow(36)
	s.WriteString(h[0:8])
	for _, part := range [...]string{h[8:12], h[12:16], h[16:20], h[20:32]} {
		s.WriteByte('-')
		s.WriteString(part)
	}
	return s.String()
}
