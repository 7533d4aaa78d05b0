// Package tokenstest is the conformance suite of server.TokenStore: any
// implementation runs it from its own tests to prove that it honours the
// contract written in package server.
//
// Start with Run. An implementation's test gives Run a factory that builds a
// fresh store with a bound of outstanding tokens per account, and returns
// two handles on it (two nodes sharing one backend; an in-memory store
// returns itself twice):
//
//	func TestConformance(t *testing.T) {
//		tokenstest.Run(t, func(t *testing.T, maxPerAccount int) [2]server.TokenStore {
//			s := server.NewMemoryTokens(server.MemoryTokensConfig{
//				MaxPerAccount: func(session.Account) int { return maxPerAccount },
//			})
//			return [2]server.TokenStore{s, s}
//		})
//	}
//
// The suite needs no clock: expiry is each implementation's own test. Every
// case is a subtest with a store of its own and checks exact outcomes (who
// won, which code refused), never timing.
package tokenstest

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// Factory builds a fresh store bounded to maxPerAccount outstanding tokens
// per account and returns two handles on it.
type Factory func(t *testing.T, maxPerAccount int) [2]server.TokenStore

// Accounts the suite mints for.
var (
	Acme   = session.Account{Name: "acme-corporation", Plan: limits.PaidPlan}
	Globex = session.Account{Name: "globex-industries", Plan: limits.TrialPlan}
)

// Run runs every case of the suite.
func Run(t *testing.T, newStore Factory) {
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, newStore) })
	t.Run("HeldWhileSpending", func(t *testing.T) { testHeld(t, newStore) })
	t.Run("OneSpendWins", func(t *testing.T) { testOneSpend(t, newStore) })
	t.Run("BoundPerAccount", func(t *testing.T) { testBound(t, newStore) })
	t.Run("ZeroBound", func(t *testing.T) { testZeroBound(t, newStore) })
	t.Run("LostWhileSpending", func(t *testing.T) { testLost(t, newStore) })
	t.Run("Opaque", func(t *testing.T) { testOpaque(t, newStore) })
}

// created returns a create func that answers id and counts its calls.
func created(id string, calls *atomic.Int32) func(context.Context, session.Account) (string, error) {
	return func(context.Context, session.Account) (string, error) {
		calls.Add(1)
		return id, nil
	}
}

func noDiscard(t *testing.T) func(context.Context, string) error {
	return func(context.Context, string) error {
		t.Error("discard called after a binding that should not fail")
		return nil
	}
}

func testLifecycle(t *testing.T, newStore Factory) {
	ctx := context.Background()
	nodes := newStore(t, 10)
	a, b := nodes[0], nodes[1]

	token, err := a.Mint(ctx, Acme)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(token, "sst_"), token)
	got, err := b.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, server.Token{Account: Acme}, got, "minted on a, known on b, plan included")
	for _, bad := range []string{"", "sst_nope", token + "x", strings.TrimPrefix(token, "sst_")} {
		_, err = a.Get(ctx, bad)
		assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "Get(%q)", bad)
		_, err = a.Check(ctx, bad, "")
		assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "Check(%q)", bad)
	}
	name, err := b.Check(ctx, token, "any-session")
	require.NoError(t, err)
	assert.Equal(t, Acme.Name, name, "an unspent token checks for any session")

	// A failed create gives the token back, with create's error.
	var calls atomic.Int32
	err = a.Spend(ctx, token, func(_ context.Context, acct session.Account) (string, error) {
		calls.Add(1)
		assert.Equal(t, Acme, acct)
		return "", sserrors.ErrConcurrentLimitReached
	}, noDiscard(t))
	assert.ErrorIs(t, err, sserrors.ErrConcurrentLimitReached)
	assert.Equal(t, sserrors.CodeConcurrentLimitReached, sserrors.CodeOf(err))
	got, err = b.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, server.Token{Account: Acme}, got, "not spent")

	require.NoError(t, b.Spend(ctx, token, created("s1", &calls), noDiscard(t)))
	assert.Equal(t, int32(2), calls.Load())
	got, err = a.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, server.Token{Account: Acme, SessionID: "s1"}, got)
	err = a.Spend(ctx, token, created("s2", &calls), noDiscard(t))
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "spent")
	assert.Equal(t, int32(2), calls.Load(), "a spent token creates nothing")

	name, err = a.Check(ctx, token, "s1")
	require.NoError(t, err)
	assert.Equal(t, Acme.Name, name)
	for _, id := range []string{"s2", ""} {
		_, err = b.Check(ctx, token, id)
		assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "spent on s1, checked for %q", id)
	}
	_, err = a.Get(ctx, token)
	require.NoError(t, err, "Check spends nothing")

	require.NoError(t, a.Revoke(ctx, "sst_never"))
	require.NoError(t, a.Revoke(ctx, ""))
	require.NoError(t, b.Revoke(ctx, token))
	_, err = a.Get(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "revoked on b, gone on a")
	_, err = a.Check(ctx, token, "s1")
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
	require.NoError(t, a.Revoke(ctx, token), "twice")
}

// testHeld: while a Spend creates its session, the token is neither
// spendable nor checkable, but Get still answers.
func testHeld(t *testing.T, newStore Factory) {
	ctx := context.Background()
	nodes := newStore(t, 10)
	a, b := nodes[0], nodes[1]
	token, err := a.Mint(ctx, Acme)
	require.NoError(t, err)
	var calls atomic.Int32
	err = a.Spend(ctx, token, func(ctx context.Context, acct session.Account) (string, error) {
		err := b.Spend(ctx, token, created("other", &calls), noDiscard(t))
		assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "a second Spend during the first")
		_, err = b.Check(ctx, token, "")
		assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "being spent: neither unspent nor spent")
		got, err := b.Get(ctx, token)
		assert.NoError(t, err)
		assert.Equal(t, server.Token{Account: Acme}, got)
		return "s1", nil
	}, noDiscard(t))
	require.NoError(t, err)
	assert.Zero(t, calls.Load())
}

func testOneSpend(t *testing.T, newStore Factory) {
	ctx := context.Background()
	nodes := newStore(t, 10)
	token, err := nodes[0].Mint(ctx, Acme)
	require.NoError(t, err)
	var calls, wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			err := nodes[i%2].Spend(ctx, token, created("s", &calls), noDiscard(t))
			if err == nil {
				wins.Add(1)
			} else {
				assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load(), "one Spend wins")
	assert.Equal(t, int32(1), calls.Load(), "one session is created")
}

// testBound: one account flooding Mint from both handles gets exactly its
// bound, then 429/400140 with a Retry-After; another account is not
// affected; a revoked token frees its place.
func testBound(t *testing.T, newStore Factory) {
	ctx := context.Background()
	const bound = 7
	nodes := newStore(t, bound)
	var ok, refused atomic.Int32
	var mu sync.Mutex
	var minted []string
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for range 5 {
				token, err := nodes[g%2].Mint(ctx, Acme)
				if err == nil {
					ok.Add(1)
					mu.Lock()
					minted = append(minted, token)
					mu.Unlock()
					continue
				}
				refused.Add(1)
				e, isErr := sserrors.As(err)
				if assert.True(t, isErr, "%v", err) {
					assert.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, e.Code)
					assert.Equal(t, 429, e.Status)
					assert.GreaterOrEqual(t, e.RetryAfter, time.Second)
					assert.LessOrEqual(t, e.RetryAfter, server.MaxTokenRetryAfter)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(bound), ok.Load(), "exactly the bound is minted")
	assert.Equal(t, int32(16*5-bound), refused.Load())

	for i := range bound {
		other, err := nodes[i%2].Mint(ctx, Globex)
		require.NoError(t, err, "another account mints its own bound")
		_, err = nodes[(i+1)%2].Get(ctx, other)
		require.NoError(t, err)
	}
	_, err := nodes[0].Mint(ctx, Globex)
	assert.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, sserrors.CodeOf(err))
	for _, token := range minted {
		_, err := nodes[1].Get(ctx, token)
		require.NoError(t, err, "the account's tokens still work past its bound")
	}

	// A spent token still counts; a revoked one frees its place.
	var calls atomic.Int32
	require.NoError(t, nodes[0].Spend(ctx, minted[0], created("s1", &calls), noDiscard(t)))
	_, err = nodes[1].Mint(ctx, Acme)
	assert.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, sserrors.CodeOf(err))
	require.NoError(t, nodes[1].Revoke(ctx, minted[0]))
	_, err = nodes[0].Mint(ctx, Acme)
	require.NoError(t, err, "the revoked token's place")
	_, err = nodes[1].Mint(ctx, Acme)
	assert.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, sserrors.CodeOf(err), "and only one")
}

func testZeroBound(t *testing.T, newStore Factory) {
	nodes := newStore(t, 0)
	_, err := nodes[0].Mint(context.Background(), Acme)
	e, ok := sserrors.As(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, e.Code)
	assert.Equal(t, server.MaxTokenRetryAfter, e.RetryAfter, "no token will free a place")
}

// testLost: a token revoked while its session is created cannot be bound:
// Spend discards the session and refuses.
func testLost(t *testing.T, newStore Factory) {
	ctx := context.Background()
	nodes := newStore(t, 10)
	token, err := nodes[0].Mint(ctx, Acme)
	require.NoError(t, err)
	var discarded []string
	err = nodes[0].Spend(ctx, token, func(ctx context.Context, _ session.Account) (string, error) {
		require.NoError(t, nodes[1].Revoke(ctx, token))
		return "s1", nil
	}, func(_ context.Context, id string) error {
		discarded = append(discarded, id)
		return errors.New("stop failed")
	})
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
	assert.ErrorContains(t, err, "stop failed", "discard's error is joined, not dropped")
	assert.Equal(t, []string{"s1"}, discarded)
}

// testOpaque: tokens are distinct and show nothing of the account in any
// common encoding.
func testOpaque(t *testing.T, newStore Factory) {
	ctx := context.Background()
	nodes := newStore(t, 100)
	seen := make(map[string]bool)
	for range 50 {
		token, err := nodes[0].Mint(ctx, Acme)
		require.NoError(t, err)
		assert.False(t, seen[token])
		seen[token] = true
		AssertHides(t, token, Acme.Name)
	}
}

// AssertHides fails t when token shows secret, raw or in base64 (standard
// or URL, padded or not, at any of the three alignments) or hex (either
// case), or when a decoding of token shows it.
func AssertHides(t *testing.T, token, secret string) {
	t.Helper()
	lower := strings.ToLower(token)
	for _, form := range encodings(secret) {
		assert.NotContains(t, token, form, "token %q shows %q", token, secret)
	}
	assert.NotContains(t, lower, strings.ToLower(secret))
	assert.NotContains(t, lower, hex.EncodeToString([]byte(secret)))
	body := strings.TrimPrefix(token, "sst_")
	for _, part := range append([]string{body}, strings.FieldsFunc(body, func(r rune) bool { return r == '.' || r == '~' })...) {
		for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.StdEncoding} {
			if raw, err := enc.DecodeString(part); err == nil {
				assert.NotContains(t, string(raw), secret, "a %T decoding of %q shows %q", enc, token, secret)
			}
		}
		if raw, err := hex.DecodeString(part); err == nil {
			assert.NotContains(t, string(raw), secret)
		}
	}
}

// encodings returns secret's base64 forms at each alignment (the inner
// characters of the encodings of secret behind 0, 1 and 2 bytes), which
// appear in any base64 text that embeds secret.
func encodings(secret string) []string {
	var out []string
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
		for pad := range 3 {
			s := enc.EncodeToString(append(make([]byte, pad), secret...))
			// Drop the characters mixed with the padding bytes and the
			// last (partial) group.
			start := (pad*8 + 5) / 6
			end := len(s) - 2
			if end > start+4 {
				out = append(out, s[start:end])
			}
		}
	}
	return out
}
