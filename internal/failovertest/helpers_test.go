// Package failovertest runs service nodes, built from the library's parts,
// on a Redis that fails: a Sentinel failover, a Redis Cluster. Its tests
// need redis-server (see internal/redistest).
package failovertest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/wstest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redisrelay"
	"github.com/streamsession/streamsession/service/redisurl"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/redisstore"
)

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func init() {
	// go-redis logs every dial failure and master switch; the tests cause
	// them on purpose.
	redis.SetLogger(quiet{})
}

var avatars = session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}

// The accounts: acme holds the sessions that must survive, load runs the
// traffic during the failover.
const (
	acmeMax = 4
	loadMax = 2
)

var accounts = server.AccountsByKey{
	"key-acme": {Name: "acme", Plan: limits.Plan{Name: "pro", MaxConcurrent: acmeMax}},
	"key-load": {Name: "load", Plan: limits.Plan{Name: "pro", MaxConcurrent: loadMax}},
}

// requestTimeout bounds each API call's work on Redis, as a node does.
const requestTimeout = 2 * time.Second

// waitTimeout bounds each WAIT: once the replica is promoted no replica
// is left, and every WAIT lasts this long.
const waitTimeout = 250 * time.Millisecond

// node is one service node on its own Redis client.
type node struct {
	client redis.UniversalClient
	mgr    *session.Manager
	store  *redisstore.Store
	http   *httptest.Server
}

// nodeOptions are what a test varies between nodes.
type nodeOptions struct {
	closingGrace time.Duration
	waitReplicas int    // redis_wait_replicas: the limiter's and the store's
	onDataLoss   func() // the store's OnDataLoss
	onWaitShort  func() // the limiter's and the store's OnWaitShort
	// wrapLimiter, when set, wraps the node's limiter (to cut a call).
	wrapLimiter func(limits.Limiter) limits.Limiter
}

// newNode builds a node from the library's parts on the Redis at rawURL,
// with a secret shared by the test's nodes.
func newNode(t *testing.T, rawURL string, secret []byte, opt nodeOptions) *node {
	t.Helper()
	client, err := redisurl.New(rawURL, redisurl.Options{})
	require.NoError(t, err)
	onShort := func(int, error) {
		if opt.onWaitShort != nil {
			opt.onWaitShort()
		}
	}
	lim, err := redislimiter.New(client, redislimiter.Config{Prefix: "fo", Capacity: 100,
		WaitReplicas: opt.waitReplicas, WaitTimeout: waitTimeout, OnWaitShort: onShort})
	require.NoError(t, err)
	store, err := redisstore.New(client, redisstore.Config{Prefix: "fo", ClosingGrace: opt.closingGrace,
		LossCheckInterval: 200 * time.Millisecond, WaitReplicas: opt.waitReplicas, WaitTimeout: waitTimeout, OnWaitShort: onShort,
		OnDataLoss: func(redisstore.DataLoss) {
			if opt.onDataLoss != nil {
				opt.onDataLoss()
			}
		}})
	require.NoError(t, err)
	var limiter limits.Limiter = lim
	if opt.wrapLimiter != nil {
		limiter = opt.wrapLimiter(lim)
	}
	mgr, err := session.NewManager(session.Config{Limiter: limiter, Avatars: avatars, Store: store})
	require.NoError(t, err)
	relay, err := redisrelay.New(client, redisrelay.Config{Prefix: "fo"})
	require.NoError(t, err)
	srv, err := server.New(server.Config{Manager: mgr, Accounts: accounts, Avatars: avatars, Secret: secret, Relay: relay})
	require.NoError(t, err)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		srv.ServeHTTP(w, r.WithContext(ctx))
	})
	n := &node{client: client, mgr: mgr, store: store, http: httptest.NewServer(h)}
	t.Cleanup(func() {
		n.http.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = mgr.Close(ctx)
		_ = srv.Shutdown(ctx)
		_ = relay.Close()
		_ = store.Close()
		_ = lim.Close()
		_ = client.Close()
	})
	return n
}

func newSecret(t *testing.T) []byte {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// answer is one API call's outcome.
type answer struct {
	status     int
	retryAfter string
	data       json.RawMessage
	code       int
}

// call posts body to path with key; a transport error is status 0.
func (n *node) call(path, key, body string) answer {
	req, err := http.NewRequest(http.MethodPost, n.http.URL+path, strings.NewReader(body))
	if err != nil {
		return answer{}
	}
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.http.Client().Do(req)
	if err != nil {
		return answer{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Code int             `json:"code"`
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(raw, &env)
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), data: env.Data, code: env.Code}
}

// created is streaming.new's answer.
type created struct {
	SessionID        string `json:"session_id"`
	RealtimeEndpoint string `json:"realtime_endpoint"`
}

func (n *node) newSession(t *testing.T, key string) created {
	t.Helper()
	a := n.call(server.PathNew, key, `{}`)
	require.Equal(t, http.StatusOK, a.status, "streaming.new: %s", a.data)
	var c created
	require.NoError(t, json.Unmarshal(a.data, &c))
	return c
}

func named(id string) string { return `{"session_id":"` + id + `"}` }

// on returns endpoint with n's host.
func (n *node) on(t *testing.T, endpoint string) string {
	t.Helper()
	return wstest.OnHost(t, endpoint, n.http.URL)
}

// socket is a realtime socket reading its messages into a channel.
type socket struct {
	conn *websocket.Conn
	msgs chan map[string]any
}

func dial(t *testing.T, endpoint string) *socket {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(endpoint, nil)
	require.NoError(t, err)
	resp.Body.Close()
	s := &socket{conn: conn, msgs: make(chan map[string]any, 64)}
	go func() {
		defer close(s.msgs)
		for {
			var m map[string]any
			if err := conn.ReadJSON(&m); err != nil {
				return
			}
			s.msgs <- m
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return s
}

// next returns the next message, failing after 10 s (a guard, not a
// timing).
func (s *socket) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m, ok := <-s.msgs:
		require.True(t, ok, "the socket closed")
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

// eventually polls cond every 20 ms until it holds, failing after within.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
