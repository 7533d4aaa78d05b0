package config

import (
	"context"
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
	assert.Equal(t, c, empty, "every key defaults to the demo's value")
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`{
		"capacity": 5,
		"plans": {"gold": {}, "free": {"trial": true}, "custom": {"trial": true, "max_concurrent": 0, "monthly_minutes": 0, "session_duration_limit": 0}},
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
	assert.Equal(t, limits.Plan{Name: "custom", Trial: true}, c.Plans["custom"], "explicit zeros are kept")
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

// TestNewService runs the demo configuration end to end: the capacity and
// the plans reach the limiter, and Shutdown frees everything.
func TestNewService(t *testing.T) {
	c, err := Parse([]byte(`{"capacity": 1}`))
	require.NoError(t, err)
	svc, err := NewService(c, Options{})
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
	list, err := svc.Manager.List(ctx, "demo-pro")
	require.NoError(t, err)
	assert.Empty(t, list, "every session was closed")
}

func TestIdempotencyTTL(t *testing.T) {
	c, err := Parse([]byte(`{"idempotency_ttl_seconds": 60}`))
	require.NoError(t, err)
	assert.Equal(t, time.Minute, c.IdempotencyTTL)
}
