package service

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestDemo(t *testing.T) {
	c := Demo()
	assert.Equal(t, 1000, c.Capacity)
	assert.Equal(t, 300*time.Second, c.JoinTimeout)
	assert.Equal(t, 600*time.Second, c.ClosedRetention)
	assert.Equal(t, 10*time.Second, c.BodyReadTimeout)
	assert.Equal(t, []string{"http://localhost:*", "http://127.0.0.1:*"}, c.CORSOrigins)
	assert.Nil(t, c.RateLimit(), "the demo plans are unlimited")
	assert.Equal(t, 24*time.Hour, c.IdempotencyTTL)
	assert.Equal(t, map[string]limits.Plan{
		"trial": {Name: "trial", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 300, SessionDurationLimit: 600 * time.Second},
		"pro":   {Name: "pro", MaxConcurrent: 100, MonthlyMinutes: 300},
	}, c.Plans)
	assert.Equal(t, []Account{
		{APIKey: "demo-trial-key", Name: "demo-trial", Plan: c.Plans["trial"]},
		{APIKey: "demo-pro-key", Name: "demo-pro", Plan: c.Plans["pro"]},
	}, c.Accounts)
	assert.Equal(t, session.Avatars{
		{ID: "Wayne_20240711", Public: true, Active: true, Default: true},
		{ID: "demo_private", Owner: "demo-pro", Active: true},
	}, c.Avatars)

	empty, err := Parse([]byte(`{}`))
	require.NoError(t, err)
	assert.True(t, c.IsDemo())
	assert.False(t, empty.IsDemo(), "a file's keys are not public")
	assert.Equal(t, MediaConfig{Enabled: true, UDPAddr: "127.0.0.1:0"}, c.Media, "the demo serves media on loopback")
	assert.Equal(t, MediaConfig{}, empty.Media, "a file without media serves none")
	empty.demo = true
	empty.Media = c.Media
	assert.Equal(t, c, empty, "every other key defaults to the demo's value")
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`{
		"capacity": 5,
		"plans": {"gold": {}, "free": {"trial": true}, "custom": {"trial": true, "max_concurrent": 0, "monthly_minutes": 0, "session_duration_limit": 0, "max_tokens_per_account": 0}, "few": {"max_tokens_per_account": 5}},
		"accounts": [{"api_key": "k1", "name": "a1", "plan": "gold"}, {"api_key": "k2", "name": "a2", "plan": "free"}, {"api_key": "k3", "name": "a3", "plan": "custom"}, {"api_key": "k4", "name": "a4", "plan": "free"}],
		"avatars": [{"avatar_id": "x"}, {"avatar_id": "y", "status": "inactive", "public": true, "default": true, "owner": "a1", "default_voice": "v"}]
	}`))
	require.NoError(t, err)
	assert.Equal(t, 5, c.Capacity)
	assert.Equal(t, 300*time.Second, c.JoinTimeout, "missing: the default")
	assert.Equal(t, 600*time.Second, c.ClosedRetention, "missing: the default")
	assert.Equal(t, 24*time.Hour, c.IdempotencyTTL, "missing: the default")
	assert.Equal(t, limits.Plan{Name: "gold", MaxConcurrent: 100, MonthlyMinutes: 300}, c.Plans["gold"])
	assert.Equal(t, limits.Plan{Name: "free", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 300, SessionDurationLimit: 600 * time.Second}, c.Plans["free"])
	assert.Equal(t, limits.Plan{Name: "custom", Trial: true, MaxTokens: -1}, c.Plans["custom"],
		"explicit zeros are kept (a token bound of 0 is a negative MaxTokens)")
	assert.Equal(t, limits.Plan{Name: "few", MaxConcurrent: 100, MonthlyMinutes: 300, MaxTokens: 5}, c.Plans["few"])
	assert.Equal(t, 5, MaxTokensPerAccount(session.Account{Name: "x", Plan: c.Plans["few"]}))
	assert.Equal(t, 0, MaxTokensPerAccount(session.Account{Name: "a3", Plan: c.Plans["custom"]}))
	assert.Equal(t, 1000, MaxTokensPerAccount(session.Account{Name: "a1", Plan: c.Plans["gold"]}), "unset: the default")
	assert.Equal(t, 1000, MaxTokensPerAccount(session.Account{Name: "x", Plan: limits.Plan{Name: "elsewhere"}}),
		"a plan the file does not have: the default")
	assert.Equal(t, session.Avatars{
		{ID: "x", Active: true},
		{ID: "y", Owner: "a1", Public: true, Active: false, Default: true, DefaultVoice: "v"},
	}, c.Avatars)
	accts := c.AccountsByKey()
	assert.Equal(t, session.Account{Name: "a2", Plan: c.Plans["free"]}, accts["k2"])
	assert.Len(t, accts, 4)

	c, err = Parse([]byte(`{"plans": {"trial": {"trial": true}}, "accounts": [{"api_key": "k", "name": "n"}]}`))
	require.NoError(t, err)
	assert.Equal(t, "trial", c.Accounts[0].Plan.Name, "an account's plan defaults to trial")
	assert.Equal(t, session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}, c.Avatars,
		"the default avatars leave out demo_private, whose owner demo-pro is not an account here")

	c, err = Parse([]byte(`{"accounts": [{"api_key": "k", "name": "demo-pro", "plan": "pro"}]}`))
	require.NoError(t, err)
	assert.Equal(t, Demo().Avatars, c.Avatars)
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want string // a part of the message that names the key
	}{
		{"unknown key", `{"capcity": 5}`, `unknown key "capcity"`},
		{"unknown plan key", `{"plans": {"p": {"max_concurent": 1}}}`, `unknown key "max_concurent"`},
		{"unknown account key", `{"accounts": [{"api_key": "k", "name": "n", "role": "admin"}]}`, `unknown key "role"`},
		{"unknown avatar key", `{"avatars": [{"avatar_id": "a", "voice": "v"}]}`, `unknown key "voice"`},
		{"wrong type", `{"capacity": "many"}`, `capacity`},
		{"wrong nested type", `{"plans": {"trial": {"trial": "yes"}}}`, `trial`},
		{"fraction", `{"join_timeout_seconds": 1.5}`, `join_timeout_seconds`},
		{"unknown media key", `{"media": {"enable": true}}`, `unknown key "enable"`},
		{"media udp not host:port", `{"media": {"udp": "127.0.0.1"}}`, `media.udp`},
		{"media udp host name", `{"media": {"udp": "localhost:0"}}`, `media.udp`},
		{"media public_ip", `{"media": {"public_ip": "example.com"}}`, `media.public_ip`},
		{"media ice server without urls", `{"media": {"ice_servers": [{"username": "u"}]}}`, `media.ice_servers[0].urls`},
		{"media ice server scheme", `{"media": {"ice_servers": [{"urls": ["http://x"]}]}}`, `media.ice_servers[0].urls`},
		{"media node_url", `{"media": {"node_url": "10.0.0.5:8080"}}`, `media.node_url`},
		{"not an object", `[]`, `JSON object`},
		{"empty", ``, `JSON object`},
		{"truncated", `{"capacity": 5`, `config`},
		{"trailing data", `{} {}`, `after the configuration`},
		{"zero capacity", `{"capacity": 0}`, `capacity: 0 is outside 1`},
		{"negative capacity", `{"capacity": -1}`, `capacity`},
		{"zero join timeout", `{"join_timeout_seconds": 0}`, `join_timeout_seconds`},
		{"huge retention", `{"closed_retention_seconds": 999999999}`, `closed_retention_seconds`},
		{"zero idempotency ttl", `{"idempotency_ttl_seconds": 0}`, `idempotency_ttl_seconds: 0 is outside 1`},
		{"huge idempotency ttl", `{"idempotency_ttl_seconds": 999999999}`, `idempotency_ttl_seconds`},
		{"negative max_concurrent", `{"plans": {"trial": {"max_concurrent": -1}}}`, `plans.trial.max_concurrent`},
		{"negative minutes", `{"plans": {"trial": {"monthly_minutes": -5}}}`, `plans.trial.monthly_minutes`},
		{"negative duration", `{"plans": {"trial": {"session_duration_limit": -1}}}`, `plans.trial.session_duration_limit`},
		{"empty plan name", `{"plans": {"": {}}}`, `plans`},
		{"negative token bound", `{"plans": {"trial": {"max_tokens_per_account": -1}}}`, `plans.trial.max_tokens_per_account: -1 is outside 0`},
		{"huge token bound", `{"plans": {"pro": {"max_tokens_per_account": 1000001}}}`, `plans.pro.max_tokens_per_account`},
		{"fractional token bound", `{"plans": {"pro": {"max_tokens_per_account": 2.5}}}`, `max_tokens_per_account`},
		{"account without key", `{"accounts": [{"name": "n", "plan": "pro"}]}`, `accounts[0].api_key: required`},
		{"account without name", `{"accounts": [{"api_key": "k", "plan": "pro"}]}`, `accounts[0].name: required`},
		{"duplicate key", `{"accounts": [{"api_key": "k", "name": "a"}, {"api_key": "k", "name": "b"}]}`, `accounts[1].api_key`},
		{"duplicate name", `{"accounts": [{"api_key": "k1", "name": "a"}, {"api_key": "k2", "name": "a"}]}`, `accounts[1].name`},
		{"unknown plan", `{"accounts": [{"api_key": "k", "name": "a", "plan": "gold"}]}`, `accounts[0].plan: unknown plan "gold"`},
		{"avatar without id", `{"avatars": [{"public": true}]}`, `avatars[0].avatar_id: required`},
		{"duplicate avatar", `{"avatars": [{"avatar_id": "a"}, {"avatar_id": "a"}]}`, `avatars[1].avatar_id`},
		{"bad status", `{"avatars": [{"avatar_id": "a", "status": "RETIRED"}]}`, `avatars[0].status`},
		{"two defaults", `{"avatars": [{"avatar_id": "a", "default": true}, {"avatar_id": "b", "default": true}]}`, `avatars[1].default`},
		{"unknown owner", `{"avatars": [{"avatar_id": "a", "owner": "nobody"}]}`, `avatars[0].owner: no account is named "nobody"`},
		{"zero body timeout", `{"body_read_timeout_seconds": 0}`, `body_read_timeout_seconds: 0 is outside 1`},
		{"body timeout not a number", `{"body_read_timeout_seconds": "10s"}`, `body_read_timeout_seconds`},
		{"cors_origins not a list", `{"cors_origins": "*"}`, `cors_origins`},
		{"cors origin with a path", `{"cors_origins": ["https://a.example", "https://b.example/app"]}`, `cors_origins[1] "https://b.example/app"`},
		{"cors origin without a scheme", `{"cors_origins": ["localhost:3000"]}`, `cors_origins[0]`},
		{"zero rate", `{"plans": {"p": {"requests_per_second": 0}}}`, `plans.p.requests_per_second: 0 is outside`},
		{"negative rate", `{"plans": {"p": {"requests_per_second": -2}}}`, `plans.p.requests_per_second`},
		{"huge rate", `{"plans": {"p": {"requests_per_second": 1e7}}}`, `plans.p.requests_per_second`},
		{"rate not a number", `{"plans": {"p": {"requests_per_second": "10/s"}}}`, `requests_per_second`},
		{"zero burst", `{"plans": {"p": {"requests_per_second": 1, "burst": 0}}}`, `plans.p.burst: 0 is outside 1`},
		{"fractional burst", `{"plans": {"p": {"requests_per_second": 1, "burst": 1.5}}}`, `burst`},
		{"burst without a rate", `{"plans": {"p": {"burst": 5}}}`, `plans.p.burst: needs requests_per_second`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.json))
			require.Error(t, err)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "config: "), err.Error())
		})
	}
}

func TestParseRateLimitsAndCORS(t *testing.T) {
	c, err := Parse([]byte(`{
		"body_read_timeout_seconds": 3,
		"cors_origins": ["https://app.example.com", "*"],
		"plans": {"free": {"trial": true, "requests_per_second": 0.5}, "pro": {"requests_per_second": 2.5}, "gold": {"requests_per_second": 10, "burst": 40}, "open": {}},
		"accounts": [{"api_key": "k1", "name": "a1", "plan": "free"}, {"api_key": "k2", "name": "a2", "plan": "pro"},
			{"api_key": "k3", "name": "a3", "plan": "gold"}, {"api_key": "k4", "name": "a4", "plan": "open"}]
	}`))
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, c.BodyReadTimeout)
	assert.Equal(t, []string{"https://app.example.com", "*"}, c.CORSOrigins)
	assert.Equal(t, limits.Plan{Name: "gold", MaxConcurrent: 100, MonthlyMinutes: 300, RequestsPerSecond: 10, RequestBurst: 40}, c.Plans["gold"],
		"the request budget is the plan's")
	assert.Equal(t, limits.Plan{Name: "pro", MaxConcurrent: 100, MonthlyMinutes: 300, RequestsPerSecond: 2.5, RequestBurst: 3}, c.Plans["pro"],
		"burst: the rate rounded up")
	assert.Equal(t, limits.Plan{Name: "open", MaxConcurrent: 100, MonthlyMinutes: 300}, c.Plans["open"])

	lookup := c.RateLimit()
	require.NotNil(t, lookup)
	assert.Equal(t, server.RateLimit{PerSecond: 0.5, Burst: 1}, lookup(session.Account{Name: "a1"}))
	assert.Equal(t, server.RateLimit{PerSecond: 2.5, Burst: 3}, lookup(session.Account{Name: "a2"}))
	assert.Equal(t, server.RateLimit{PerSecond: 10, Burst: 40}, lookup(session.Account{Name: "a3"}))
	assert.True(t, lookup(session.Account{Name: "a4"}).Unlimited(), "a plan without a rate")
	assert.True(t, lookup(session.Account{Name: "nobody"}).Unlimited())

	none, err := Parse([]byte(`{"cors_origins": []}`))
	require.NoError(t, err)
	assert.Equal(t, []string{}, none.CORSOrigins, "[] allows no origin")
}

// TestNewWiresServerKeys: the body deadline, the CORS origins and the
// plans' request budgets reach the server.
func TestNewWiresServerKeys(t *testing.T) {
	c, err := Parse([]byte(`{
		"cors_origins": ["https://app.example.com"],
		"plans": {"pro": {"requests_per_second": 0.001, "burst": 2}, "trial": {"trial": true}},
		"accounts": [{"api_key": "k-pro", "name": "pro-co", "plan": "pro"}, {"api_key": "k-trial", "name": "trial-co", "plan": "trial"}]
	}`))
	require.NoError(t, err)
	svc, err := New(context.Background(), c, Options{})
	require.NoError(t, err)
	ts := httptest.NewServer(svc.Server)
	defer ts.Close()
	defer shutdown(t, svc)

	get := func(key, origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/streaming/avatar.list", nil)
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	for range 2 {
		resp := get("k-pro", "https://app.example.com")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "https://app.example.com", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	resp := get("k-pro", "http://localhost:3000")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "burst 2")
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "the demo's localhost origins are replaced")
	for range 5 {
		assert.Equal(t, http.StatusOK, get("k-trial", "").StatusCode, "another plan, unlimited")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	require.NoError(t, os.WriteFile(good, []byte(`{"capacity": 7}`), 0o600))
	c, err := Load(good)
	require.NoError(t, err)
	assert.Equal(t, 7, c.Capacity)

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"capacity": 7, "extra": 1}`), 0o600))
	_, err = Load(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad)
	assert.Contains(t, err.Error(), `unknown key "extra"`)

	_, err = Load(filepath.Join(dir, "missing.json"))
	assert.Error(t, err)
}

// TestNew runs the demo configuration end to end: the capacity and
// the plans reach the limiter, and Shutdown frees everything.
func TestNew(t *testing.T) {
	c, err := Parse([]byte(`{"capacity": 1}`))
	require.NoError(t, err)
	svc, err := New(context.Background(), c, Options{})
	require.NoError(t, err)
	ts := httptest.NewServer(svc.Server)
	defer ts.Close()

	post := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/streaming.new", strings.NewReader(`{}`))
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, post("demo-pro-key"))
	assert.Equal(t, http.StatusTooManyRequests, post("demo-trial-key"), "capacity 1")
	assert.Equal(t, http.StatusUnauthorized, post("nope"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, svc.Shutdown(ctx))
	require.NoError(t, svc.Close())
	list, err := svc.Manager.List(ctx, "demo-pro")
	require.NoError(t, err)
	assert.Empty(t, list, "every session was closed")
}

// TestNewTokenBound: each plan's max_tokens_per_account reaches the
// default token store; an account past its bound gets 429/400140 with a
// Retry-After, and another account is not affected.
func TestNewTokenBound(t *testing.T) {
	c, err := Parse([]byte(`{"plans": {"trial": {"trial": true, "max_tokens_per_account": 1}, "pro": {"max_tokens_per_account": 2}}}`))
	require.NoError(t, err)
	svc, err := New(context.Background(), c, Options{})
	require.NoError(t, err)
	ts := httptest.NewServer(svc.Server)
	defer ts.Close()
	defer shutdown(t, svc)

	mint := func(key string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/streaming.create_token", strings.NewReader(`{}`))
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(body)
	}
	for range 2 {
		status, _, _ := mint("demo-pro-key")
		assert.Equal(t, http.StatusOK, status)
	}
	status, retry, body := mint("demo-pro-key")
	assert.Equal(t, http.StatusTooManyRequests, status)
	assert.Equal(t, `{"code":400140,"message":"Exceed rate limit"}`, body)
	assert.Equal(t, "60", retry, "the oldest token expires in an hour: capped at a minute")
	status, _, _ = mint("demo-trial-key")
	assert.Equal(t, http.StatusOK, status, "another account")
	status, _, _ = mint("demo-trial-key")
	assert.Equal(t, http.StatusTooManyRequests, status, "the trial plan's own bound")
}

func TestIdempotencyTTL(t *testing.T) {
	c, err := Parse([]byte(`{"idempotency_ttl_seconds": 60}`))
	require.NoError(t, err)
	assert.Equal(t, time.Minute, c.IdempotencyTTL)
}

// shutdown ends a node built by New.
func shutdown(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	assert.NoError(t, n.Shutdown(ctx))
	assert.NoError(t, n.Close())
}
