package service

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/internal/wstest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// served is a node serving on a loopback port until stop.
type served struct {
	node *Node
	base string
	done chan error
	stop context.CancelFunc
}

func serveNode(t *testing.T, cfg *Config, opts Options) *served {
	t.Helper()
	n, err := New(context.Background(), cfg, opts)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{node: n, base: "http://" + ln.Addr().String(), done: make(chan error, 1), stop: cancel}
	go func() { s.done <- n.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// end stops the node and returns what Serve returned.
func (s *served) end(t *testing.T) error {
	t.Helper()
	s.stop()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

func (s *served) post(t *testing.T, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeAlone: a node in memory serves the API, the probes, /metrics and
// the console on one handler; ending its context closes every session
// (a connected client receives closing and closed) and frees every slot.
func TestServeAlone(t *testing.T) {
	var logs syncBuffer
	cfg := Demo()
	closed := make(chan session.Info, 10)
	s := serveNode(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registry: prometheus.NewRegistry(),
		Session: session.Config{Hooks: session.Hooks{OnClosed: func(i session.Info) { closed <- i }}}})

	status, _ := get(t, s.base+server.PathHealthz)
	assert.Equal(t, http.StatusOK, status)
	status, _ = get(t, s.base+server.PathReadyz)
	assert.Equal(t, http.StatusOK, status)
	status, page := get(t, s.base+"/")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, page, "streamsession console")
	_, consoleConfig := get(t, s.base+"/config.json")
	assert.Contains(t, consoleConfig, "demo-pro-key", "the demo's keys are public: the console offers them")

	status, created := s.post(t, server.PathNew, "demo-pro-key", `{}`)
	require.Equal(t, http.StatusOK, status, created)
	data := created["data"].(map[string]any)
	id := data["session_id"].(string)
	_, started := s.post(t, server.PathStart, "demo-pro-key", `{"session_id":"`+id+`"}`)
	require.EqualValues(t, 100, started["code"], started)
	ws := wstest.Dial(t, data["realtime_endpoint"].(string))
	assert.Equal(t, "connected", ws.State())

	status, metricsText := get(t, s.base+"/metrics")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, metricsText, `streamsession_sessions{state="connected"} 1`)
	assert.Contains(t, metricsText, `backend="memory"`)

	// The client reads while the node ends, as a real one does: it answers
	// the close frame, so the shutdown does not wait for it.
	states := make(chan []string, 1)
	go func() {
		var got []string
		defer func() { states <- got }() // also when a read fails the test
		for range 2 {
			got = append(got, ws.State())
		}
		ws.CloseError()
	}()
	require.NoError(t, s.end(t))
	assert.Equal(t, []string{"closing", "closed"}, <-states)
	select {
	case i := <-closed:
		assert.Equal(t, id, i.ID, "the template's hook is kept beside the node's own")
		assert.Equal(t, session.ReasonShutdown, i.Reason)
		assert.True(t, i.Paid)
	default:
		t.Fatal("Hooks.OnClosed was not called")
	}
	info, err := s.node.Manager.Get(context.Background(), "demo-pro", id)
	require.NoError(t, err)
	assert.Equal(t, "closed", info.State.String())
	list, err := s.node.Manager.List(context.Background(), "demo-pro")
	require.NoError(t, err)
	assert.Empty(t, list, "no session is open")
	assert.Contains(t, logs.String(), "shutting down")
	assert.NotContains(t, logs.String(), "demo-pro-key", "no API key in the logs")
	assert.NotContains(t, logs.String(), id, "no raw session id in the logs")
}

// TestHandlerWithoutRegistry: a node built with the zero Options serves no
// /metrics, and a configuration file's keys are not offered by the console.
func TestHandlerWithoutRegistry(t *testing.T) {
	cfg, err := Parse([]byte(`{}`))
	require.NoError(t, err)
	s := serveNode(t, cfg, Options{})
	status, _ := get(t, s.base+"/metrics")
	assert.NotEqual(t, http.StatusOK, status)
	status, consoleConfig := get(t, s.base+"/config.json")
	assert.Equal(t, http.StatusOK, status)
	assert.NotContains(t, consoleConfig, "demo-pro-key")
	require.NoError(t, s.end(t))
}

// TestMetricsAddr: with MetricsAddr, New binds it and /metrics is served
// there only.
func TestMetricsAddr(t *testing.T) {
	cfg := Demo()
	cfg.MetricsAddr = "127.0.0.1:0"
	s := serveNode(t, cfg, Options{Registry: prometheus.NewRegistry()})
	addr := s.node.MetricsAddr()
	require.NotNil(t, addr)
	status, _ := get(t, "http://"+addr.String()+"/metrics")
	assert.Equal(t, http.StatusOK, status)
	status, _ = get(t, s.base+"/metrics")
	assert.NotEqual(t, http.StatusOK, status)
	require.NoError(t, s.end(t))
	_, err := net.DialTimeout("tcp", addr.String(), time.Second)
	assert.Error(t, err, "the metrics listener is closed with the node")
}

// TestNewFailsCleanly: a Redis that does not answer fails New, leaving
// nothing open (goleak checks the goroutines at the end).
func TestNewFailsCleanly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	cfg := Demo()
	cfg.Redis.Addr = addr
	n, err := New(context.Background(), cfg, Options{})
	require.Error(t, err)
	assert.Nil(t, n)
	assert.Contains(t, err.Error(), "redis "+addr)
}

// TestServeWithRedis: a node on Redis uses the Redis limiter (capacity
// shared with a second node), and ending its context drains it: the socket
// is closed with 1012, the session keeps its state and its slot, and the
// other node still serves it.
func TestServeWithRedis(t *testing.T) {
	srv := redistest.Start(t)
	cfg, err := Parse([]byte(`{"capacity": 1}`))
	require.NoError(t, err)
	cfg.Redis = RedisConfig{Addr: srv.Addr(), Prefix: "svc-test"}
	cfg.Shutdown = ShutdownConfig{DrainTimeout: 5 * time.Second}
	reg := prometheus.NewRegistry()
	a := serveNode(t, cfg, Options{Registry: reg})
	b := serveNode(t, cfg, Options{})
	_, ok := a.node.Limiter.(limits.Limiter)
	require.True(t, ok)

	status, created := a.post(t, server.PathNew, "demo-pro-key", `{}`)
	require.Equal(t, http.StatusOK, status, created)
	data := created["data"].(map[string]any)
	id := data["session_id"].(string)
	status, refused := b.post(t, server.PathNew, "demo-trial-key", `{}`)
	assert.Equal(t, http.StatusTooManyRequests, status, "capacity 1, shared through Redis: %v", refused)
	_, started := b.post(t, server.PathStart, "demo-pro-key", `{"session_id":"`+id+`"}`)
	require.EqualValues(t, 100, started["code"], "the other node knows the session: %v", started)
	_, metricsText := get(t, a.base+"/metrics")
	assert.Contains(t, metricsText, `backend="redis"`)

	ws := wstest.Dial(t, strings.Replace(data["realtime_endpoint"].(string), b.base[len("http://"):], a.base[len("http://"):], 1))
	assert.Equal(t, "connected", ws.State())

	require.NoError(t, a.end(t))
	ce := ws.CloseError()
	require.NotNil(t, ce)
	assert.Equal(t, 1012, ce.Code, "drained: the client reopens through another node")
	info, err := b.node.Manager.Get(context.Background(), "demo-pro", id)
	require.NoError(t, err)
	assert.Equal(t, "connected", info.State.String(), "the session survives the drain")
	status, _ = b.post(t, server.PathNew, "demo-trial-key", `{}`)
	assert.Equal(t, http.StatusTooManyRequests, status, "its slot is still held")
	require.NoError(t, b.end(t))
}
