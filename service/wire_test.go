package service

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/server"
)

// metric returns the value of the sample name (labels ignored, summed)
// in a /metrics text, and whether it was there.
func metric(text, name string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`)
	var sum float64
	found := false
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	return sum, found
}

// eventually polls cond every 50 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// laCall makes a LiveAvatar call with either an API key or a bearer token
// and returns the status and the envelope's data.
func laCall(t *testing.T, base, path, apiKey, bearer, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if apiKey != "" {
		req.Header.Set("X-API-KEY", apiKey)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var env struct {
		Code    int            `json:"code"`
		Data    map[string]any `json:"data"`
		Message string         `json:"message"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
	if resp.StatusCode < 300 {
		require.Equal(t, 1000, env.Code, "%s: %s", path, env.Message)
	}
	return resp.StatusCode, env.Data
}

// liveAvatarStart mints a LiveAvatar session token on base and starts the
// session with it, returning the session id and its ws_url.
func liveAvatarStart(t *testing.T, tokenBase, startBase string) (id, wsURL string) {
	t.Helper()
	status, tok := laCall(t, tokenBase, "/v1/sessions/token", "demo-pro-key", "", `{"mode":"LITE","avatar_id":"Wayne_20240711"}`)
	require.Equal(t, http.StatusOK, status, tok)
	status, started := laCall(t, startBase, "/v1/sessions/start", "", tok["session_token"].(string), `{}`)
	require.Equal(t, http.StatusCreated, status, started)
	return started["session_id"].(string), started["ws_url"].(string)
}

// readState reads LITE frames until a session.state_updated and returns
// its state.
func readState(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	for {
		require.NoError(t, ws.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, msg, err := ws.ReadMessage()
		require.NoError(t, err)
		var ev struct{ Type, State string }
		require.NoError(t, json.Unmarshal(msg, &ev), "%s", msg)
		if ev.Type == "session.state_updated" {
			return ev.State
		}
	}
}

// dialLite opens a LITE socket and returns it once it received connected.
func dialLite(t *testing.T, wsURL string) *websocket.Conn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
	require.NoError(t, err, "dial %s: %v", wsURL, resp)
	t.Cleanup(func() { ws.Close() })
	assert.Equal(t, "connecting", readState(t, ws))
	assert.Equal(t, "connected", readState(t, ws))
	return ws
}

// TestLiveAvatarServed: a LiveAvatar session token minted through the
// node starts a session whose ws_url socket gets connected, and the
// session is the Streaming API's too; at the end the socket gets closing
// and closed (reason shutdown).
func TestLiveAvatarServed(t *testing.T) {
	s := serveNode(t, Demo(), Options{Registry: prometheus.NewRegistry()})
	status, _ := laCall(t, s.base, "/v1/sessions/token", "not-a-key", "", `{"mode":"LITE","avatar_id":"Wayne_20240711"}`)
	assert.Equal(t, http.StatusUnauthorized, status)
	_, text := get(t, s.base+"/metrics")
	refused, _ := metric(text, "streamsession_request_refusals_total")
	assert.Equal(t, 1.0, refused, "LiveAvatar's refusals reach the metrics")

	id, wsURL := liveAvatarStart(t, s.base, s.base)
	assert.True(t, strings.HasPrefix(wsURL, "ws://"+s.base[len("http://"):]+"/v1/sessions/"), wsURL)
	ws := dialLite(t, wsURL)

	info, err := s.node.Manager.Get(context.Background(), "demo-pro", id)
	require.NoError(t, err)
	assert.Equal(t, "connected", info.State.String())
	_, text = get(t, s.base+"/metrics")
	sockets, _ := metric(text, "streamsession_realtime_sockets")
	assert.Equal(t, 1.0, sockets, "LiveAvatar's sockets reach the metrics")

	require.NoError(t, s.end(t))
	assert.Equal(t, "closing", readState(t, ws))
	assert.Equal(t, "closed", readState(t, ws))
}

// TestLiveAvatarAcrossRedisNodes: with two nodes on one Redis, a token
// minted on A starts on B and the socket opens on A.
func TestLiveAvatarAcrossRedisNodes(t *testing.T) {
	srv := redistest.Start(t)
	cfg := Demo()
	cfg.Redis = RedisConfig{Addr: srv.Addr(), Prefix: "la-test"}
	cfg.Media.Enabled = false // not about media (see media_test.go)
	cfg.Shutdown = ShutdownConfig{DrainTimeout: 5 * time.Second}
	a := serveNode(t, cfg, Options{})
	b := serveNode(t, cfg, Options{})
	_, wsURL := liveAvatarStart(t, a.base, b.base)
	hostA, hostB := a.base[len("http://"):], b.base[len("http://"):]
	require.Contains(t, wsURL, hostB, "ws_url names the node that answered")
	dialLite(t, strings.Replace(wsURL, hostB, hostA, 1))
}

// TestPublicURL: realtime_endpoint, url and ws_url are built from
// public_url, whatever the request's Host.
func TestPublicURL(t *testing.T) {
	cfg, err := Parse([]byte(`{"public_url": "https://api.example.com/edge/"}`))
	require.NoError(t, err)
	s := serveNode(t, cfg, Options{})
	status, created := s.post(t, server.PathNew, "demo-pro-key", `{}`)
	require.Equal(t, http.StatusOK, status, created)
	data := created["data"].(map[string]any)
	assert.True(t, strings.HasPrefix(data["realtime_endpoint"].(string), "wss://api.example.com/edge/"), data["realtime_endpoint"])

	status, tok := laCall(t, s.base, "/v1/sessions/token", "demo-pro-key", "", `{"mode":"LITE","avatar_id":"Wayne_20240711"}`)
	require.Equal(t, http.StatusOK, status, tok)
	status, started := laCall(t, s.base, "/v1/sessions/start", "", tok["session_token"].(string), `{}`)
	require.Equal(t, http.StatusCreated, status, started)
	assert.True(t, strings.HasPrefix(started["ws_url"].(string), "wss://api.example.com/edge/v1/sessions/"), started["ws_url"])
}

// TestAdminAddr: with admin_addr the probes and /metrics are served there
// and /metrics is no longer beside the API; -metrics-addr is its older
// name, and the two differing is refused.
func TestAdminAddr(t *testing.T) {
	cfg := Demo()
	cfg.AdminAddr = "127.0.0.1:0"
	s := serveNode(t, cfg, Options{Registry: prometheus.NewRegistry()})
	admin := "http://" + s.node.AdminAddr().String()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		status, body := get(t, admin+path)
		assert.Equal(t, http.StatusOK, status, "%s: %s", path, body)
	}
	_, text := get(t, admin+"/metrics")
	v, ok := metric(text, "streamsession_http_connections_max")
	assert.True(t, ok && v > 0, "the API listener's connection cap is exported")
	_, body := get(t, s.base+"/metrics")
	assert.NotContains(t, body, "streamsession_", "/metrics left the API listener")
	status, _ := get(t, s.base+"/healthz")
	assert.Equal(t, http.StatusOK, status, "the probes stay on the API listener")

	bad := Demo()
	bad.AdminAddr, bad.MetricsAddr = "127.0.0.1:0", "127.0.0.1:1"
	_, err := New(context.Background(), bad, Options{})
	require.ErrorContains(t, err, "differ")
}

// TestMaxConnections: a flood of silent connections at a low
// max_connections does not keep a new client out, and the node never
// holds more connections than the cap.
func TestMaxConnections(t *testing.T) {
	const maxConns = 8
	cfg, err := Parse([]byte(fmt.Sprintf(`{"max_connections": %d}`, maxConns)))
	require.NoError(t, err)
	cfg.AdminAddr = "127.0.0.1:0"
	s := serveNode(t, cfg, Options{Registry: prometheus.NewRegistry()})
	host := s.base[len("http://"):]
	var flood []net.Conn
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})
	for range 4 * maxConns {
		c, err := net.Dial("tcp", host)
		require.NoError(t, err)
		flood = append(flood, c)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get(s.base + "/healthz")
	require.NoError(t, err, "a new request is served while the flood is held")
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	t.Logf("served after %v", time.Since(start).Round(time.Millisecond))

	_, text := get(t, "http://"+s.node.AdminAddr().String()+"/metrics")
	open, _ := metric(text, "streamsession_http_connections")
	capv, _ := metric(text, "streamsession_http_connections_max")
	shed, _ := metric(text, "streamsession_http_connections_shed_total")
	assert.Equal(t, float64(maxConns), capv)
	assert.LessOrEqual(t, open, float64(maxConns))
	assert.Positive(t, shed, "silent connections were shed")
}

// TestIdempotencyMaxKeys: idempotency_max_keys_per_account bounds the
// answers kept, so the oldest key is forgotten and makes a new session.
func TestIdempotencyMaxKeys(t *testing.T) {
	cfg, err := Parse([]byte(`{"idempotency_max_keys_per_account": 2}`))
	require.NoError(t, err)
	s := serveNode(t, cfg, Options{})
	newWithKey := func(key string) string {
		req, err := http.NewRequest(http.MethodPost, s.base+server.PathNew, strings.NewReader(`{}`))
		require.NoError(t, err)
		req.Header.Set("X-Api-Key", "demo-pro-key")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var v struct {
			Data struct {
				SessionID string `json:"session_id"`
			} `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
		require.NotEmpty(t, v.Data.SessionID)
		return v.Data.SessionID
	}
	first := newWithKey("k1")
	assert.Equal(t, first, newWithKey("k1"), "a key within the bound replays its answer")
	newWithKey("k2")
	newWithKey("k3")
	assert.NotEqual(t, first, newWithKey("k1"), "the oldest key was forgotten at the bound of 2")
}

// TestMaxClosedPerAccount: max_closed_per_account bounds the closed
// sessions kept, so the oldest closed one answers 10006.
func TestMaxClosedPerAccount(t *testing.T) {
	cfg, err := Parse([]byte(`{"max_closed_per_account": 1}`))
	require.NoError(t, err)
	s := serveNode(t, cfg, Options{})
	var ids []string
	for range 2 {
		status, created := s.post(t, server.PathNew, "demo-pro-key", `{}`)
		require.Equal(t, http.StatusOK, status, created)
		id := created["data"].(map[string]any)["session_id"].(string)
		status, stopped := s.post(t, server.PathStop, "demo-pro-key", `{"session_id":"`+id+`"}`)
		require.Equal(t, http.StatusOK, status, stopped)
		ids = append(ids, id)
	}
	_, err = s.node.Manager.Get(context.Background(), "demo-pro", ids[0])
	require.Error(t, err)
	assert.Contains(t, err.Error(), "10006")
	info, err := s.node.Manager.Get(context.Background(), "demo-pro", ids[1])
	require.NoError(t, err)
	assert.Equal(t, "closed", info.State.String())
}

// requirePassword makes srv ask for password and returns it.
func requirePassword(t *testing.T, srv *redistest.Server) string {
	t.Helper()
	const password = "hunter2-redis-pw"
	require.NoError(t, srv.Client().ConfigSet(context.Background(), "requirepass", password).Err())
	return password
}

// TestRedisURLRedacted: a node reaches a Redis that asks for a password
// through a redis:// URL, a password file or the environment, and no log
// line or error ever holds the password.
func TestRedisURLRedacted(t *testing.T) {
	srv := redistest.Start(t)
	password := requirePassword(t, srv)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	cfg := Demo()
	cfg.Shutdown = ShutdownConfig{DrainTimeout: 5 * time.Second}
	cfg.Redis = RedisConfig{Addr: "redis://default:not-" + password + "@" + srv.Addr(), Prefix: "url-test"}
	cfg.Media.Enabled = false // not about media (see media_test.go)
	_, err := New(context.Background(), cfg, Options{Logger: logger})
	require.Error(t, err, "a wrong password")
	assert.NotContains(t, err.Error(), password)
	assert.Contains(t, err.Error(), srv.Addr(), "the error names the Redis")

	cfg.Redis.Addr = "redis://default:" + password + "@" + srv.Addr()
	s := serveNode(t, cfg, Options{Logger: logger})
	status, created := s.post(t, server.PathNew, "demo-pro-key", `{}`)
	require.Equal(t, http.StatusOK, status, created)
	require.NoError(t, s.end(t))

	file := filepath.Join(t.TempDir(), "redis-password")
	require.NoError(t, os.WriteFile(file, []byte(password+"\n"), 0o600))
	cfg.Redis.Addr, cfg.Redis.PasswordFile = srv.Addr(), file
	s = serveNode(t, cfg, Options{Logger: logger})
	status, _ = get(t, s.base+"/readyz")
	assert.Equal(t, http.StatusOK, status, "host:port with -redis-password-file")
	require.NoError(t, s.end(t))

	t.Setenv(redisPasswordEnv, password)
	cfg.Redis.PasswordFile = ""
	s = serveNode(t, cfg, Options{Logger: logger})
	status, _ = get(t, s.base+"/readyz")
	assert.Equal(t, http.StatusOK, status, "host:port with "+redisPasswordEnv)
	require.NoError(t, s.end(t))

	cfg.Redis.Addr = "redis://default:" + password + "@" + srv.Addr()
	_, err = New(context.Background(), cfg, Options{Logger: logger})
	require.Error(t, err, "a password in the URL and in the environment is ambiguous")
	assert.NotContains(t, err.Error(), password)

	assert.NotContains(t, logs.String(), password)
	assert.NotEmpty(t, logs.String())
}

// TestRedisWaitReplicasShort: redis_wait_replicas with no replica makes
// the creation's and the end's WAIT come back short: counted and logged.
func TestRedisWaitReplicasShort(t *testing.T) {
	srv := redistest.Start(t)
	cfg, err := Parse([]byte(`{"redis_wait_replicas": 1}`))
	require.NoError(t, err)
	cfg.Redis.Addr, cfg.Redis.Prefix = srv.Addr(), "wait-test"
	cfg.Shutdown = ShutdownConfig{DrainTimeout: 5 * time.Second}
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	s := serveNode(t, cfg, Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	status, created := s.post(t, server.PathNew, "demo-pro-key", `{}`)
	require.Equal(t, http.StatusOK, status, created)
	_, text := get(t, s.base+"/metrics")
	v, _ := metric(text, "streamsession_redis_wait_short_total")
	assert.GreaterOrEqual(t, v, 1.0)
	assert.Contains(t, logs.String(), "redis_wait_replicas")
	assert.Contains(t, text, `backend="redis"`)
}

// TestRedisDataLossAndSecret: when Redis loses its data the node closes
// the sessions it knew (counted, logged), writes its secret back and stays
// ready; when another node's secret replaces its own, /readyz answers 503
// and the log says why.
func TestRedisDataLossAndSecret(t *testing.T) {
	srv := redistest.Start(t)
	cfg := Demo()
	cfg.Redis = RedisConfig{Addr: srv.Addr(), Prefix: "loss-test"}
	cfg.Media.Enabled = false // not about media (see media_test.go)
	cfg.Shutdown = ShutdownConfig{DrainTimeout: 5 * time.Second}
	var logs syncBuffer
	s := serveNode(t, cfg, Options{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	status, created := s.post(t, server.PathNew, "demo-pro-key", `{}`)
	require.Equal(t, http.StatusOK, status, created)
	id := created["data"].(map[string]any)["session_id"].(string)

	ctx := context.Background()
	require.NoError(t, srv.Client().FlushAll(ctx).Err())
	eventually(t, 10*time.Second, "the loss is counted", func() bool {
		_, text := get(t, s.base+"/metrics")
		v, _ := metric(text, "streamsession_store_resets_total")
		return v >= 1
	})
	eventually(t, 10*time.Second, "the secret is written back", func() bool {
		return srv.Client().Exists(ctx, "{loss-test}:secret").Val() == 1
	})
	status, _ = get(t, s.base+"/readyz")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, logs.String(), "lost the service's data")
	assert.NotContains(t, logs.String(), id, "no session id in logs")

	require.NoError(t, srv.Client().Set(ctx, "{loss-test}:secret", hex.EncodeToString([]byte("another node's secret, 32 bytes")), 0).Err())
	eventually(t, 10*time.Second, "/readyz fails on another node's secret", func() bool {
		status, _ := get(t, s.base+"/readyz")
		return status == http.StatusServiceUnavailable
	})
	assert.Contains(t, logs.String(), "another node's")
}

// TestParseNodeKeys: the node's keys take their defaults, and a bad value
// is refused with a message naming the key.
func TestParseNodeKeys(t *testing.T) {
	c, err := Parse([]byte(`{}`))
	require.NoError(t, err)
	assert.Equal(t, 1000, c.MaxClosedPerAccount)
	assert.Equal(t, 10000, c.IdempotencyMaxKeysPerAccount)
	assert.Equal(t, 0, c.MaxConnections)
	assert.Equal(t, 0, c.Redis.WaitReplicas)
	assert.Equal(t, "", c.PublicURL)

	c, err = Parse([]byte(`{"max_closed_per_account": -1, "redis_wait_replicas": 2, "public_url": "https://a.example/x/", "admin_addr": "127.0.0.1:9090", "max_connections": 500}`))
	require.NoError(t, err)
	assert.Equal(t, -1, c.MaxClosedPerAccount)
	assert.Equal(t, 2, c.Redis.WaitReplicas)
	assert.Equal(t, "https://a.example/x", c.PublicURL)
	assert.Equal(t, "127.0.0.1:9090", c.AdminAddr)
	assert.Equal(t, 500, c.MaxConnections)

	for _, tc := range []struct{ in, want string }{
		{`{"max_closed_per_account": -2}`, "max_closed_per_account"},
		{`{"idempotency_max_keys_per_account": 0}`, "idempotency_max_keys_per_account"},
		{`{"max_connections": -1}`, "max_connections"},
		{`{"redis_wait_replicas": -1}`, "redis_wait_replicas"},
		{`{"public_url": "api.example.com"}`, "public_url"},
		{`{"public_url": "ftp://api.example.com"}`, "public_url"},
		{`{"public_url": "https://u:p@api.example.com"}`, "public_url"},
	} {
		_, err := Parse([]byte(tc.in))
		require.Error(t, err, tc.in)
		assert.Contains(t, err.Error(), tc.want, tc.in)
	}
}
