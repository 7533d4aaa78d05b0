package redisrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/internal/stacktest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/ratelimittest"
	"github.com/streamsession/streamsession/session"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(redistest.ExamplesMain(m, "Example"))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestNewRefusesBadConfig(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	for _, cfg := range []Config{
		{Prefix: "a{b"}, {Timeout: -time.Second}, {Timeout: time.Microsecond}, {Failure: limits.FailurePolicy(7)},
	} {
		_, err := New(client, cfg)
		assert.ErrorIs(t, err, sserrors.ErrInvalidParameter, "%+v", cfg)
	}
	_, err := New(nil, Config{})
	assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
	assert.Equal(t, "fail-closed", limits.FailClosed.String())
	assert.Equal(t, "fail-open", limits.FailOpen.String())
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	ratelimittest.Run(t, func(t *testing.T) server.RateLimiter {
		l, err := New(srv.NewClient(&redis.Options{ContextTimeoutEnabled: true}), Config{Prefix: "conformance"})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

// TestAllowSharesOneBudget: two Limiters (two nodes) on one Redis take
// from one budget per key; a refusal writes nothing.
func TestAllowSharesOneBudget(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a, err := New(srv.NewClient(&redis.Options{}), Config{})
	require.NoError(t, err)
	b, err := New(srv.NewClient(&redis.Options{}), Config{})
	require.NoError(t, err)
	limit := server.RateLimit{PerSecond: 0.01, Burst: 3} // one request every 100 s
	for i, l := range []*Limiter{a, b, a} {
		d, err := l.Allow(ctx, "acme", limit)
		require.NoError(t, err)
		assert.True(t, d.Allowed, "call %d", i)
	}
	sum := sha256.Sum256([]byte("acme"))
	key := "rate:{" + DefaultPrefix + ":r:" + hex.EncodeToString(sum[:16]) + "}"
	keys, err := srv.Client().Keys(ctx, "*").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{key}, keys, "one key, under the account's own hash tag")
	before, err := srv.Client().Get(ctx, key).Result()
	require.NoError(t, err)
	for _, l := range []*Limiter{b, a} {
		d, err := l.Allow(ctx, "acme", limit)
		require.NoError(t, err)
		assert.False(t, d.Allowed)
		assert.Greater(t, d.RetryAfter, 90*time.Second)
		assert.LessOrEqual(t, d.RetryAfter, 100*time.Second)
	}
	after, err := srv.Client().Get(ctx, key).Result()
	require.NoError(t, err)
	assert.Equal(t, before, after, "a refusal writes nothing")
	ttl, err := srv.Client().TTL(ctx, key).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, time.Duration(0), "the key expires once the budget refills")

	d, err := b.Allow(ctx, "globex", limit)
	require.NoError(t, err)
	assert.True(t, d.Allowed, "another account has its own budget")
	d, err = b.Allow(ctx, "acme", server.RateLimit{})
	require.NoError(t, err)
	assert.True(t, d.Allowed, "unlimited")

	// Concurrent calls from both nodes: exactly the burst passes.
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for i := range 40 {
		l := []*Limiter{a, b}[i%2]
		wg.Go(func() {
			d, err := l.Allow(ctx, "initech", server.RateLimit{PerSecond: 0.01, Burst: 5})
			assert.NoError(t, err)
			if d.Allowed {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 5, passed)
}

// node is one server of the service: its own Redis client, limiter,
// manager and HTTP listener.
type node struct {
	url string
	svc *stacktest.Stack
}

// sessions returns the sessions of account on n's manager.
func (n node) sessions(t *testing.T, account string) int {
	t.Helper()
	infos, err := n.svc.Manager.List(context.Background(), account)
	require.NoError(t, err)
	return len(infos)
}

// The service's accounts: two of a metered plan (0.01 requests a second,
// a burst of 3), one of an unlimited plan.
var (
	metered  = limits.Plan{Name: "metered", MaxConcurrent: 100, RequestsPerSecond: 0.01, RequestBurst: 3}
	accounts = server.AccountsByKey{
		"k-a":    {Name: "acct-a", Plan: metered},
		"k-b":    {Name: "acct-b", Plan: metered},
		"k-free": {Name: "free-co", Plan: limits.Plan{Name: "free", MaxConcurrent: 100}},
	}
)

func startNode(t *testing.T, srv *redistest.Server, cfg Config) node {
	t.Helper()
	lim, err := New(srv.NewClient(&redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1}), cfg)
	require.NoError(t, err)
	rates := func(a session.Account) server.RateLimit {
		return server.RateLimit{PerSecond: a.Plan.RequestsPerSecond, Burst: a.Plan.RequestBurst}
	}
	svc := stacktest.New(t, accounts, server.Config{RateLimiter: lim, RateLimit: rates})
	ts := httptest.NewServer(svc.Server)
	t.Cleanup(ts.Close)
	return node{url: ts.URL, svc: svc}
}

type answer struct {
	status     int
	retryAfter string
	body       string
}

func (n node) call(t *testing.T, key, path, body string) answer {
	t.Helper()
	method := http.MethodPost
	if body == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, n.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(data)}
}

// TestTwoServersShareOneBudget: two server.Servers on one redis-server:
// the burst is spent across both, then both refuse the account with
// 429/400140, and the other accounts are untouched.
func TestTwoServersShareOneBudget(t *testing.T) {
	srv := redistest.Start(t)
	n1, n2 := startNode(t, srv, Config{}), startNode(t, srv, Config{})
	for i, n := range []node{n1, n2, n1} {
		r := n.call(t, "k-a", server.PathAvatarList, "")
		require.Equal(t, http.StatusOK, r.status, "call %d: %s", i, r.body)
	}
	for _, n := range []node{n2, n1} {
		r := n.call(t, "k-a", server.PathNew, "{}")
		assert.Equal(t, http.StatusTooManyRequests, r.status)
		assert.Equal(t, `{"code":400140,"message":"Exceed rate limit"}`, r.body)
		assert.Equal(t, "100", r.retryAfter, "one request every 100 s, rounded up")
	}
	assert.Equal(t, http.StatusOK, n2.call(t, "k-b", server.PathNew, "{}").status, "acct-b has its own budget")
	for range 5 {
		assert.Equal(t, http.StatusOK, n1.call(t, "k-free", server.PathAvatarList, "").status)
	}
	assert.Equal(t, 0, n1.sessions(t, "acct-a")+n2.sessions(t, "acct-a"), "the refused streaming.new created nothing")
	assert.Equal(t, 1, n2.sessions(t, "acct-b"))
}

// TestRedisOutage: with Redis gone, a fail-closed node answers
// 503/400558 with a Retry-After and creates nothing; a fail-open node
// serves the call and reports the error; both count again once Redis is
// back.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	var mu sync.Mutex
	var failures []error
	closed := startNode(t, srv, Config{Timeout: 500 * time.Millisecond})
	open := startNode(t, srv, Config{Timeout: 500 * time.Millisecond, Failure: limits.FailOpen, OnFailOpen: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, err)
	}})
	require.Equal(t, http.StatusOK, closed.call(t, "k-a", server.PathList, "").status)

	srv.Kill()
	r := closed.call(t, "k-a", server.PathNew, "{}")
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, `{"code":400558,"message":"API connection error"}`, r.body)
	assert.Equal(t, "1", r.retryAfter)
	assert.Equal(t, 0, closed.sessions(t, "acct-a"), "nothing was created")
	assert.Equal(t, http.StatusOK, closed.call(t, "k-free", server.PathAvatarList, "").status, "an unlimited account does not need Redis")

	for range 5 {
		r = open.call(t, "k-a", server.PathAvatarList, "")
		assert.Equal(t, http.StatusOK, r.status, r.body)
	}
	mu.Lock()
	assert.Len(t, failures, 5)
	for _, err := range failures {
		assert.Error(t, err)
		assert.False(t, errors.Is(err, context.Canceled))
	}
	mu.Unlock()

	srv.Restart() // without the data: the budget starts full
	for i := range 3 {
		r = closed.call(t, "k-a", server.PathList, "")
		assert.Equal(t, http.StatusOK, r.status, "call %d: %s", i, r.body)
	}
	assert.Equal(t, http.StatusTooManyRequests, open.call(t, "k-a", server.PathList, "").status)
}

// TestAccountsHaveTheirOwnHashTag: each account's budget is under a hash
// tag of its own that shows no account name.
func TestAccountsHaveTheirOwnHashTag(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	l, err := New(client, Config{Prefix: "p"})
	require.NoError(t, err)
	tag := func(account string) string {
		k := l.key(account)
		end := strings.IndexByte(k, '}')
		require.True(t, strings.HasPrefix(k, "{") && end == len(k)-1, k)
		assert.NotContains(t, k, account)
		return k[1:end]
	}
	acme := tag("acme")
	assert.Regexp(t, `^p:r:[0-9a-f]{32}$`, acme)
	assert.Equal(t, acme, tag("acme"))
	assert.NotEqual(t, acme, tag("globex"), "two accounts, two tags")
}
