package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/session"
)

const bodyRateLimited = `{"code":400140,"message":"Exceed rate limit"}`

func TestRateLimitBurst(t *testing.T) {
	tests := []struct {
		limit RateLimit
		burst int
	}{
		{RateLimit{PerSecond: 2, Burst: 3}, 3},
		{RateLimit{PerSecond: 2.5}, 3}, // Burst defaults to ceil(PerSecond)
		{RateLimit{PerSecond: 0.1}, 1},
		{RateLimit{PerSecond: 50, Burst: 1}, 1},
	}
	for _, tt := range tests {
		if got := tt.limit.EffectiveBurst(); got != tt.burst {
			t.Errorf("%+v.EffectiveBurst() = %d, want %d", tt.limit, got, tt.burst)
		}
	}
	for _, l := range []RateLimit{{}, {PerSecond: -1, Burst: 3}, {Burst: 5}} {
		assert.True(t, l.Unlimited(), "%+v", l)
	}
}

func TestMemoryRateLimiter(t *testing.T) {
	clock := newFakeClock()
	m := NewMemoryRateLimiter(MemoryRateLimiterConfig{Now: clock.Now})
	ctx := context.Background()
	limit := RateLimit{PerSecond: 4, Burst: 2}
	allow := func(key string) RateDecision {
		t.Helper()
		d, err := m.Allow(ctx, key, limit)
		require.NoError(t, err)
		return d
	}

	assert.Equal(t, RateDecision{Allowed: true}, allow("a"))
	assert.Equal(t, RateDecision{Allowed: true}, allow("a"))
	assert.Equal(t, RateDecision{RetryAfter: 250 * time.Millisecond}, allow("a"), "1/rps until the next token")
	assert.Equal(t, RateDecision{RetryAfter: 250 * time.Millisecond}, allow("a"), "a refusal takes nothing")
	assert.Equal(t, RateDecision{Allowed: true}, allow("b"), "every key has its own budget")

	clock.Advance(100 * time.Millisecond)
	assert.Equal(t, RateDecision{RetryAfter: 150 * time.Millisecond}, allow("a"))
	clock.Advance(150 * time.Millisecond)
	assert.Equal(t, RateDecision{Allowed: true}, allow("a"))
	assert.False(t, allow("a").Allowed)

	// A changed limit keeps the budget's tokens.
	limit = RateLimit{PerSecond: 1, Burst: 1}
	assert.Equal(t, RateDecision{RetryAfter: time.Second}, allow("a"))
}

func TestMemoryRateLimiterSweepsAndBounds(t *testing.T) {
	clock := newFakeClock()
	m := NewMemoryRateLimiter(MemoryRateLimiterConfig{Now: clock.Now, MaxKeys: 3, SweepInterval: time.Minute})
	ctx := context.Background()
	slow := RateLimit{PerSecond: 0.001, Burst: 1} // refills in 1000 s
	fast := RateLimit{PerSecond: 10, Burst: 1}
	take := func(key string, l RateLimit) bool {
		d, err := m.Allow(ctx, key, l)
		require.NoError(t, err)
		return d.Allowed
	}
	require.True(t, take("fast", fast))
	require.True(t, take("slow1", slow))
	clock.Advance(time.Second)
	require.True(t, take("slow2", slow))
	assert.Len(t, m.buckets, 3)

	// At the bound, a new key first forgets the budgets that refilled.
	clock.Advance(time.Second)
	require.True(t, take("slow3", slow))
	assert.Len(t, m.buckets, 3)
	assert.NotContains(t, m.buckets, "fast")
	assert.False(t, take("slow1", slow), "a budget in use is kept")

	// With none refilled, the least recently used is forgotten.
	clock.Advance(time.Second)
	require.True(t, take("slow4", slow))
	assert.Len(t, m.buckets, 3)
	assert.NotContains(t, m.buckets, "slow2")

	// The periodic sweep forgets what refilled.
	clock.Advance(2000 * time.Second)
	require.True(t, take("fast", fast))
	assert.Equal(t, []string{"fast"}, keysOf(m.buckets))
}

func keysOf(m map[string]*bucket) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// rateEnv is a server where the accounts of the pro plan (acme and globex)
// get limit, and every other account is unlimited. The budget follows the
// plan, so a request whose account is not resolved would go unlimited.
func rateEnv(t *testing.T, limit RateLimit, tweak func(*Config)) *env {
	return newEnv(t, func(c *Config) {
		c.RateLimit = func(acct session.Account) RateLimit {
			if acct.Plan.Name == proPlan.Name {
				return limit
			}
			return RateLimit{}
		}
		if tweak != nil {
			tweak(c)
		}
	})
}

func TestRateLimitRefusesOverBurst(t *testing.T) {
	e := rateEnv(t, RateLimit{PerSecond: 2, Burst: 3}, nil)
	list := func(apiKey string) response { return e.do(http.MethodGet, PathList, key(apiKey), nil) }
	for i := range 3 {
		r := list("key-acme")
		require.Equal(t, http.StatusOK, r.status, "call %d: %s", i, r.body)
	}
	r := list("key-acme")
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, bodyRateLimited, r.body)
	assert.Equal(t, "1", r.header.Get("Retry-After"), "500 ms, rounded up to a whole second")
	ref := <-e.refused
	assert.Equal(t, Refusal{Endpoint: PathList, Account: testAccts["key-acme"], Code: sserrors.CodeMovioAPIExceedRateLimit,
		Status: http.StatusTooManyRequests, Err: ref.Err, Context: ref.Context}, ref)

	assert.Equal(t, http.StatusOK, list("key-trial").status, "an unlimited plan is never refused")
	assert.Equal(t, http.StatusUnauthorized, list("key-nobody").status, "no account, no budget")

	e.clock.Advance(499 * time.Millisecond)
	assert.Equal(t, http.StatusTooManyRequests, list("key-acme").status)
	e.clock.Advance(time.Millisecond) // 1/rps since the burst
	assert.Equal(t, http.StatusOK, list("key-acme").status)
	assert.Equal(t, http.StatusTooManyRequests, list("key-acme").status)
}

func TestRateLimitRetryAfterRoundsUp(t *testing.T) {
	e := rateEnv(t, RateLimit{PerSecond: 0.4, Burst: 1}, nil)
	require.Equal(t, http.StatusOK, e.post("key-acme", PathCreateToken, "{}").status)
	r := e.post("key-acme", PathCreateToken, "{}")
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "3", r.header.Get("Retry-After"), "2.5 s rounds up")
	e.clock.Advance(2 * time.Second)
	r = e.post("key-acme", PathCreateToken, "{}")
	assert.Equal(t, "1", r.header.Get("Retry-After"), "500 ms: at least one second")
}

// TestRateLimitRefusalChangesNothing: a refused streaming.new creates no
// session and takes no slot, and a refused call with a bearer token does
// not spend it; the token's calls count in its account's budget.
func TestRateLimitRefusalChangesNothing(t *testing.T) {
	e := rateEnv(t, RateLimit{PerSecond: 1, Burst: 2}, nil)
	r := e.post("key-acme", PathCreateToken, "{}")
	require.Equal(t, http.StatusOK, r.status)
	token := tokenOf(t, r)
	e.newSession("key-acme")

	r = e.post("key-acme", PathNew, map[string]any{})
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	r = e.do(http.MethodPost, PathNew, bearer(token), map[string]any{})
	assert.Equal(t, http.StatusTooManyRequests, r.status, "a bearer token spends its account's budget")
	assert.Equal(t, bodyRateLimited, r.body)

	infos, err := e.mgr.List(context.Background(), "acme")
	require.NoError(t, err)
	assert.Len(t, infos, 1, "the refused calls created nothing")
	assert.Equal(t, 1, e.lim.heldCount(), "and took no slot")

	e.clock.Advance(time.Second)
	r = e.do(http.MethodPost, PathNew, bearer(token), map[string]any{})
	assert.Equal(t, http.StatusOK, r.status, "the refusal did not spend the token: %s", r.body)
}

// TestRateLimitFloodIsolated: account acme floods from many goroutines
// while globex, on the same plan, makes its calls: exactly acme's burst
// passes, and every call of globex passes.
func TestRateLimitFloodIsolated(t *testing.T) {
	const burst = 5
	e := rateEnv(t, RateLimit{PerSecond: 1, Burst: burst}, nil)
	var wg sync.WaitGroup
	var passed, refused atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 40 {
				switch r := e.do(http.MethodGet, PathAvatarList, key("key-acme"), nil); r.status {
				case http.StatusOK:
					passed.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
				default:
					t.Errorf("acme: %d %s", r.status, r.body)
				}
			}
		})
	}
	for i := range burst {
		r := e.do(http.MethodGet, PathAvatarList, key("key-globex"), nil)
		assert.Equal(t, http.StatusOK, r.status, "globex call %d during the flood: %s", i, r.body)
	}
	wg.Wait()
	assert.Equal(t, int64(burst), passed.Load())
	assert.Equal(t, int64(8*40-burst), refused.Load())
}

// failingRates is a RateLimiter whose backend is down.
type failingRates struct{ err error }

func (f failingRates) Allow(context.Context, string, RateLimit) (RateDecision, error) {
	return RateDecision{}, f.err
}

func TestRateLimiterFailureFailsClosed(t *testing.T) {
	e := rateEnv(t, RateLimit{PerSecond: 1}, func(c *Config) {
		c.RateLimiter = failingRates{errors.New("dial tcp 127.0.0.1:1: connection refused")}
	})
	r := e.post("key-acme", PathNew, map[string]any{})
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, `{"code":400558,"message":"API connection error"}`, r.body)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.Equal(t, 0, e.lim.heldCount())
	assert.Equal(t, http.StatusOK, e.post("key-trial", PathCreateToken, "{}").status, "an unlimited account does not ask")
}

func tokenOf(t *testing.T, r response) string {
	t.Helper()
	var body struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &body), r.body)
	require.NotEmpty(t, body.Data.Token, r.body)
	return body.Data.Token
}

// TestRefusalsWithoutRetryAfterGetOne: a backend's 503, or a rate refusal
// (400140), that carries no Retry-After is still answered with one, as the
// contract of every 503 and 429/400140 says.
func TestRefusalsWithoutRetryAfterGetOne(t *testing.T) {
	bare503 := sserrors.ErrAPIConnectionError.WithStatus(http.StatusServiceUnavailable)
	tests := []struct {
		name  string
		tweak func(*Config)
		hdr   map[string]string
		want  int
	}{
		{"a RateLimiter's 503", func(c *Config) {
			c.RateLimit = func(session.Account) RateLimit { return RateLimit{PerSecond: 1} }
			c.RateLimiter = failingRates{bare503}
		}, key("key-acme"), http.StatusServiceUnavailable},
		{"an IdempotencyStore's 503", func(c *Config) {
			c.Idempotency.Store = beginFailsWith{bare503}
		}, keyed("key-acme", "k"), http.StatusServiceUnavailable},
		{"a TokenStore's 429/400140", func(c *Config) {
			c.Tokens = mintRefuses{NewMemoryTokens(MemoryTokensConfig{}), sserrors.ErrMovioAPIExceedRateLimit}
		}, key("key-acme"), http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.tweak)
			path := PathNew
			if tt.want == http.StatusTooManyRequests {
				path = PathCreateToken
			}
			r := e.do(http.MethodPost, path, tt.hdr, `{}`)
			assert.Equal(t, tt.want, r.status, r.body)
			assert.Equal(t, "1", r.header.Get("Retry-After"))
			assert.Equal(t, 0, e.lim.heldCount())
		})
	}
}

// beginFailsWith is an IdempotencyStore whose Begin fails with err.
type beginFailsWith struct{ err error }

func (b beginFailsWith) Begin(context.Context, IdempotencyKey) (Reservation, error) {
	return Reservation{}, b.err
}

func (b beginFailsWith) Finish(context.Context, IdempotencyKey, string, *StoredAnswer) error {
	return nil
}

// mintRefuses is a TokenStore whose Mint fails with err.
type mintRefuses struct {
	TokenStore
	err error
}

func (m mintRefuses) Mint(context.Context, session.Account) (string, error) { return "", m.err }

// TestRateLimitSocketGetsTheAccount: the realtime upgrade knows only the
// account's name from its credential; the server resolves it through
// Accounts, so the budget of the account's plan applies there too.
func TestRateLimitSocketGetsTheAccount(t *testing.T) {
	e := rateEnv(t, RateLimit{PerSecond: 0.001, Burst: 2}, nil)
	c := e.connecting("key-acme") // streaming.new and streaming.start spend the burst
	_, resp, err := e.dial(c.RealtimeEndpoint, nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
}

func TestResolveAccount(t *testing.T) {
	acme := testAccts["key-acme"]
	assert.Equal(t, acme, ResolveAccount(testAccts, "acme"))
	assert.Equal(t, session.Account{Name: "nobody"}, ResolveAccount(testAccts, "nobody"))
	assert.Equal(t, session.Account{Name: "acme"}, ResolveAccount(keyOnly{}, "acme"), "Accounts without names")
}

// keyOnly is an Accounts that cannot look names up.
type keyOnly struct{}

func (keyOnly) LookupAPIKey(string) (session.Account, bool) { return session.Account{}, false }
