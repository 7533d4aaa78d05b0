package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/seal"
	"github.com/streamsession/streamsession/session"
)

func TestMemoryTokensExpire(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	store := NewMemoryTokens(MemoryTokensConfig{TTL: time.Minute, Now: clock.Now})
	acct := session.Account{Name: "acme", Plan: proPlan}
	token, err := store.Mint(ctx, acct)
	require.NoError(t, err)
	other, err := store.Mint(ctx, acct)
	require.NoError(t, err)

	// Idle expiry: every use (Get, Reserve, Bind, Check) restarts the
	// minute.
	clock.Advance(59 * time.Second)
	_, err = store.Get(ctx, token)
	require.NoError(t, err)
	clock.Advance(59 * time.Second)
	hold, err := store.Reserve(ctx, token)
	require.NoError(t, err)
	clock.Advance(59 * time.Second)
	require.NoError(t, store.Bind(ctx, token, hold, "s1"))
	clock.Advance(59 * time.Second)
	_, err = store.Check(ctx, token, "s1")
	require.NoError(t, err)
	_, err = store.Get(ctx, other)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "unused for four minutes")
	clock.Advance(time.Minute)
	_, err = store.Check(ctx, token, "s1")
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
	assert.Equal(t, 0, store.Len(), "expired tokens are dropped when met")
}

// TestMemoryTokensBound: past its bound an account is refused with a
// Retry-After saying when its oldest token expires (capped); expired tokens
// stop counting.
func TestMemoryTokensBound(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	store := NewMemoryTokens(MemoryTokensConfig{TTL: 90 * time.Second, Now: clock.Now,
		MaxPerAccount: func(a session.Account) int { return map[string]int{"pro": 3, "trial": 1}[a.Plan.Name] }})
	acme := session.Account{Name: "acme", Plan: proPlan}
	var first string
	for i := range 3 {
		token, err := store.Mint(ctx, acme)
		require.NoError(t, err)
		if i == 0 {
			first = token
		}
		clock.Advance(10 * time.Second)
	}
	retryAfter := func(err error) time.Duration {
		t.Helper()
		e, ok := sserrors.As(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, e.Code)
		return e.RetryAfter
	}
	_, err := store.Mint(ctx, acme)
	assert.Equal(t, MaxTokenRetryAfter, retryAfter(err), "the oldest expires in 60 s")
	clock.Advance(20 * time.Second)
	_, err = store.Mint(ctx, acme)
	assert.Equal(t, 40*time.Second, retryAfter(err), "the oldest expires in 40 s")
	_, err = store.Get(ctx, first) // the oldest is now the second
	require.NoError(t, err)
	_, err = store.Mint(ctx, acme)
	assert.Equal(t, 50*time.Second, retryAfter(err), "the second expires in 50 s")
	clock.Advance(50 * time.Second)
	_, err = store.Mint(ctx, acme)
	require.NoError(t, err, "the second expired: its place is free")
	_, err = store.Mint(ctx, acme)
	assert.Equal(t, 10*time.Second, retryAfter(err), "the third expires in 10 s")
	clock.Advance(9*time.Second + 500*time.Millisecond)
	_, err = store.Mint(ctx, acme)
	assert.Equal(t, time.Second, retryAfter(err), "at least a second")

	trial := session.Account{Name: "trial-co", Plan: trialPlan}
	_, err = store.Mint(ctx, trial)
	require.NoError(t, err, "another plan, its own bound")
	_, err = store.Mint(ctx, trial)
	assert.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, sserrors.CodeOf(err))
}

// TestMemoryTokensPerAccount shows by structure that an account's calls
// never touch another account's tokens: a flooder's expired tokens stay
// where they are (untouched) while another account mints and spends, and
// go only when the flooder itself mints again.
func TestMemoryTokensPerAccount(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	const bound = 500
	store := NewMemoryTokens(MemoryTokensConfig{TTL: time.Minute, Now: clock.Now,
		MaxPerAccount: func(session.Account) int { return bound }})
	flooder := session.Account{Name: "flooder", Plan: proPlan}
	var wg sync.WaitGroup
	var refused atomic.Int32
	for range 16 {
		wg.Go(func() {
			for range 100 {
				if _, err := store.Mint(ctx, flooder); err != nil {
					assert.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, sserrors.CodeOf(err))
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(16*100-bound), refused.Load())
	assert.Equal(t, bound, store.Len())

	clock.Advance(time.Minute) // every flooder token has expired
	other := session.Account{Name: "other", Plan: proPlan}
	token, err := store.Mint(ctx, other)
	require.NoError(t, err)
	_, err = store.Get(ctx, token)
	require.NoError(t, err)
	hold, err := store.Reserve(ctx, token)
	require.NoError(t, err)
	require.NoError(t, store.Bind(ctx, token, hold, "s1"))
	assert.Equal(t, bound+1, store.Len(), "the other account's calls left the flooder's tokens alone")

	_, err = store.Mint(ctx, flooder)
	require.NoError(t, err)
	assert.Equal(t, 2, store.Len(), "the flooder's own Mint dropped its expired tokens")
}

// BenchmarkCheckWithManyTokens measures a bearer call (Get) and Check of
// one account while another account holds 10 or 100,000 tokens: the
// per-call cost does not depend on the other account's tokens (compare the
// two sub-benchmarks; the ratio is about 1).
func BenchmarkCheckWithManyTokens(b *testing.B) {
	for _, n := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("outstanding=%d", n), func(b *testing.B) {
			ctx := context.Background()
			store := NewMemoryTokens(MemoryTokensConfig{MaxPerAccount: func(session.Account) int { return n }})
			flooder := session.Account{Name: "flooder", Plan: proPlan}
			for range n {
				if _, err := store.Mint(ctx, flooder); err != nil {
					b.Fatal(err)
				}
			}
			token, err := store.Mint(ctx, session.Account{Name: "other", Plan: proPlan})
			if err != nil {
				b.Fatal(err)
			}
			hold, err := store.Reserve(ctx, token)
			if err != nil {
				b.Fatal(err)
			}
			if err := store.Bind(ctx, token, hold, "s1"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := store.Get(ctx, token); err != nil {
					b.Fatal(err)
				}
				if _, err := store.Check(ctx, token, "s1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAccessTokens: an access token verifies for its session under its
// secret, on any node holding the secret, and nowhere else; it shows neither
// the account nor the session.
func TestAccessTokens(t *testing.T) {
	a := mustAccess(t, []byte("secret"))
	const account, id = "acme-corporation", "0123456789abcdef0123456789abcdef"
	token := a.mint(account, id)
	got, ok := a.verify(token, id)
	assert.True(t, ok)
	assert.Equal(t, account, got)
	for _, shown := range []string{account, id} { // see also TestTokensAreOpaque
		assert.NotContains(t, token, shown)
		assert.NotContains(t, token, base64.RawURLEncoding.EncodeToString([]byte(shown))[:8])
		raw, err := base64.RawURLEncoding.DecodeString(token)
		require.NoError(t, err)
		assert.NotContains(t, string(raw), shown)
	}
	assert.NotEqual(t, token, a.mint(account, id), "random: two tokens for one session differ")
	assert.Len(t, a.mint("a", id), len(a.mint(strings.Repeat("b", 29), id)), "the length says nothing of the account")

	// Nodes sharing a secret accept each other's tokens.
	got, ok = mustAccess(t, []byte("secret")).verify(token, id)
	assert.True(t, ok)
	assert.Equal(t, account, got)

	flipped := []byte(token)
	flipped[len(flipped)/2] ^= 1
	tests := []struct {
		name, token, id string
	}{
		{"another session", token, id[:len(id)-1] + "0"},
		{"no session", token, ""},
		{"empty token", "", id},
		{"another secret", mustAccess(t, []byte("other")).mint(account, id), id},
		{"bad base64", "!!!" + token[3:], id},
		{"truncated", token[:len(token)-2], id},
		{"a bit flipped", string(flipped), id},
		{"the old format", "YWNtZQ.c2lnbmF0dXJl", id},
		{"too long", strings.Repeat("A", 5000), id},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok := a.verify(tt.token, tt.id)
			assert.False(t, ok)
		})
	}
}

// FuzzAccessTokenVerify: verify never panics and accepts only what mint
// made.
func FuzzAccessTokenVerify(f *testing.F) {
	a := mustAccess(f, []byte("secret"))
	f.Add(a.mint("acme", "s1"), "s1")
	f.Add("", "s1")
	f.Add("YWNtZQ.c2ln", "s1")
	f.Fuzz(func(t *testing.T, token, id string) {
		if account, ok := a.verify(token, id); ok && a.mint(account, id) == "" {
			t.Fatal("unreachable")
		}
	})
}

// mustAccess returns the access tokens sealed under secret.
func mustAccess(t testing.TB, secret []byte) accessTokens {
	t.Helper()
	a, err := newAccessTokens(secret)
	require.NoError(t, err)
	return a
}

func TestShortHashIsSessions(t *testing.T) {
	for _, id := range []string{"", "s1", "0123456789abcdef0123456789abcdef"} {
		assert.Equal(t, session.ShortHash(id), ShortHash(id), "ShortHash(%q)", id) //nolint:staticcheck // the deprecated alias under test
	}
}

// TestCreateTokenBoundedPerAccount: one account flooding create_token gets
// 429/400140 with a Retry-After past its bound, each refusal reaches the
// Refused hook; another account still mints and calls.
func TestCreateTokenBoundedPerAccount(t *testing.T) {
	const bound = 20
	e := newEnv(t, func(c *Config) {
		c.Tokens = NewMemoryTokens(MemoryTokensConfig{Now: c.Clock.Now, MaxPerAccount: func(a session.Account) int {
			if a.Name == "acme" {
				return bound
			}
			return DefaultMaxTokensPerAccount
		}})
	})
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 5 {
				r := e.post("key-acme", PathCreateToken, "")
				switch r.status {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
					assert.Equal(t, `{"code":400140,"message":"Exceed rate limit"}`, r.body)
					assert.Equal(t, "60", r.header.Get("Retry-After"))
				default:
					t.Errorf("create_token: %d %s", r.status, r.body)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(bound), ok.Load())
	assert.Equal(t, int32(16*5-bound), refused.Load())
	for range 16*5 - bound {
		r := <-e.refused
		assert.Equal(t, Refusal{Endpoint: PathCreateToken, Account: testAccts["key-acme"], Code: sserrors.CodeMovioAPIExceedRateLimit, Status: 429, Err: r.Err, Context: r.Context}, r)
	}

	token := e.mintToken("key-globex")
	r := e.do("GET", PathList, bearer(token), nil)
	assert.Equal(t, http.StatusOK, r.status, "another account's bearer calls")
	r = e.do("POST", PathNew, bearer(token), "{}")
	assert.Equal(t, http.StatusOK, r.status, r.body)
}

// revokeDuringCreate is a TokenStore whose token is revoked between its
// Reserve and its Bind, while the session is created (as when it expires
// or is revoked meanwhile).
type revokeDuringCreate struct{ *MemoryTokens }

func (s revokeDuringCreate) Bind(ctx context.Context, token string, hold TokenHold, id string) error {
	_ = s.Revoke(ctx, token) // cannot fail in memory
	return s.MemoryTokens.Bind(ctx, token, hold, id)
}

// TestSpendLostStopsTheSession: when the token cannot be bound to the
// session its streaming.new created, the session is stopped and its slot
// freed; the caller gets 401/400112 and no session id.
func TestSpendLostStopsTheSession(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Tokens = revokeDuringCreate{NewMemoryTokens(MemoryTokensConfig{Now: c.Clock.Now})}
	})
	token := e.mintToken("key-limited")
	r := e.do("POST", PathNew, bearer(token), "{}")
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, bodyUnauthorized, r.body)
	infos, err := e.mgr.List(context.Background(), "limited")
	require.NoError(t, err)
	for _, info := range infos {
		assert.Equal(t, fsm.Closed, info.State, "the session is stopped")
	}
	e.lim.mu.Lock()
	assert.Empty(t, e.lim.held, "its slot is free")
	e.lim.mu.Unlock()
	e.newSession("key-limited") // the plan's one slot
}

// perCallAccessTokens is the access tokens as they were sealed before
// internal/seal: the key derived and the cipher built on every mint and
// verify. It is the baseline of BenchmarkAccessTokenMintVerify.
type perCallAccessTokens struct{ secret []byte }

func (p perCallAccessTokens) tokens() accessTokens {
	box, err := seal.New(p.secret, accessInfo)
	if err != nil {
		panic(err)
	}
	return accessTokens{box: box}
}

func (p perCallAccessTokens) mint(account, id string) string { return p.tokens().mint(account, id) }

func (p perCallAccessTokens) verify(token, id string) (string, bool) {
	return p.tokens().verify(token, id)
}

// BenchmarkAccessTokenMintVerify measures one mint and one verify of a
// session access token: "per-call" derives the key and builds AES-GCM on
// each (the baseline), "built-once" seals with the Box built in New.
// Compare the two in one run: go test -run '^$' -bench AccessTokenMintVerify
// ./server/.
func BenchmarkAccessTokenMintVerify(b *testing.B) {
	const account, id = "acme-corporation", "0123456789abcdef0123456789abcdef"
	baseline := perCallAccessTokens{secret: testSecret}
	once := mustAccess(b, testSecret)
	for name, a := range map[string]interface {
		mint(account, id string) string
		verify(token, id string) (string, bool)
	}{"per-call": baseline, "built-once": once} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, ok := a.verify(a.mint(account, id), id); !ok {
					b.Fatal("does not verify")
				}
			}
		})
	}
}

// TestPerCallBaselineAgrees: the benchmark's baseline mints what the
// built-once tokens verify, and the other way round, so the two measure
// the same work.
func TestPerCallBaselineAgrees(t *testing.T) {
	baseline := perCallAccessTokens{secret: testSecret}
	once := mustAccess(t, testSecret)
	got, ok := once.verify(baseline.mint("acme", "s1"), "s1")
	assert.True(t, ok)
	assert.Equal(t, "acme", got)
	got, ok = baseline.verify(once.mint("acme", "s1"), "s1")
	assert.True(t, ok)
	assert.Equal(t, "acme", got)
}
