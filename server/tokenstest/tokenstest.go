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
	t.Run("Scope", func(t *testing.T) { testScope(t, newStore) })
	t.Run("HeldWhileReserved", func(t *testing.T) { testHeld(t, newStore) })
	t.Run("ReleaseAndBindNeedTheHold", func(t *testing.T) { testHoldNames(t, newStore) })
	t.Run("OneReserveWins", func(t *testing.T) { testOneReserve(t, newStore) })
	t.Run("BoundPerAccount", func(t *testing.T) { testBound(t, newStore) })
	t.Run("ZeroBound", func(t *testing.T) { testZeroBound(t, newStore) })
	t.Run("RevokedWhileReserved", func(t *testing.T) { testLost(t, newStore) })
	t.Run("Opaque", func(t *testing.T) { testOpaque(t, newStore) })
}

// spend reserves token on store and binds it to id, as streaming.new does.
func spend(ctx context.Context, store server.TokenStore, token, id string) error {
	hold, err := store.Reserve(ctx, token)
	if err != nil {
		return err
	}
	return store.Bind(ctx, token, hold, id)
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
		_, err = a.Check(ctx, bad, "s1")
		assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "Check(%q)", bad)
		_, err = a.Reserve(ctx, bad)
		assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "Reserve(%q)", bad)
	}

	// A released hold gives the token back unused.
	hold, err := a.Reserve(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, Acme, hold.Account, "the hold names the token's account")
	assert.NotEmpty(t, hold.ID)
	require.NoError(t, b.Release(ctx, token, hold))
	require.NoError(t, b.Release(ctx, token, hold), "releasing twice is harmless")
	got, err = b.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, server.Token{Account: Acme}, got, "not spent")
	assert.ErrorIs(t, a.Bind(ctx, token, hold, "s0"), sserrors.ErrUnauthorized, "a released hold binds nothing")

	hold, err = b.Reserve(ctx, token)
	require.NoError(t, err)
	require.NoError(t, a.Bind(ctx, token, hold, "s1"))
	got, err = a.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, server.Token{Account: Acme, SessionID: "s1"}, got)
	_, err = a.Reserve(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "spent")
	assert.ErrorIs(t, b.Bind(ctx, token, hold, "s2"), sserrors.ErrUnauthorized, "bound once")
	require.NoError(t, b.Release(ctx, token, hold), "a spent token's hold is gone: nothing to release")
	got, err = b.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, "s1", got.SessionID, "Release of a spent token leaves it spent")

	name, err := a.Check(ctx, token, "s1")
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

// testScope: a token is worth its own session: Check accepts it for that
// session alone; an unspent token, or another token of the same account,
// checks for no session.
func testScope(t *testing.T, newStore Factory) {
	ctx := context.Background()
	nodes := newStore(t, 10)
	a, b := nodes[0], nodes[1]
	owner, err := a.Mint(ctx, Acme)
	require.NoError(t, err)
	other, err := a.Mint(ctx, Acme)
	require.NoError(t, err)
	for _, id := range []string{"s1", ""} {
		_, err = b.Check(ctx, owner, id)
		assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "an unspent token checks for no session (%q)", id)
	}
	require.NoError(t, spend(ctx, a, owner, "s1"))
	_, err = b.Check(ctx, other, "s1")
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "an unspent token of the same account, on another's session")
	require.NoError(t, spend(ctx, b, other, "s2"))
	_, err = a.Check(ctx, other, "s1")
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "a token spent on s2, on s1")
	name, err := a.Check(ctx, other, "s2")
	require.NoError(t, err)
	assert.Equal(t, Acme.Name, name)
}

// testHeld: while a Reserve holds a token, it can neither be reserved
// again nor checked, but Get still answers.
func testHeld(t *testing.T, newStore Factory) {
	ctx := context.Background()
	nodes := newStore(t, 10)
	a, b := nodes[0], nodes[1]
	token, err := a.Mint(ctx, Acme)
	require.NoError(t, err)
	hold, err := a.Reserve(ctx, token)
	require.NoError(t, err)
	_, err = b.Reserve(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "a second Reserve during the first")
	for _, id := range []string{"", "s1"} {
		_, err = b.Check(ctx, token, id)
		assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "held: not spent on %q", id)
	}
	got, err := b.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, server.Token{Account: Acme}, got)
	require.NoError(t, b.Bind(ctx, token, hold, "s1"), "the hold binds on either handle")
}

// testHoldNames: Bind and Release act only for the hold that holds the
// token; another hold's name (or none) changes nothing.
func testHoldNames(t *testing.T, newStore Factory) {
	ctx := context.Background()
	nodes := newStore(t, 10)
	a, b := nodes[0], nodes[1]
	token, err := a.Mint(ctx, Acme)
	require.NoError(t, err)
	other, err := a.Mint(ctx, Acme)
	require.NoError(t, err)
	otherHold, err := a.Reserve(ctx, other)
	require.NoError(t, err)
	hold, err := a.Reserve(ctx, token)
	require.NoError(t, err)
	assert.NotEqual(t, hold.ID, otherHold.ID)
	for name, forged := range map[string]server.TokenHold{
		"empty":         {Account: Acme},
		"another hold":  {Account: Acme, ID: otherHold.ID},
		"made-up":       {Account: Acme, ID: "0123456789abcdef"},
		"not like hold": {Account: Acme, ID: "x"},
	} {
		require.NoError(t, b.Release(ctx, token, forged), name)
		assert.ErrorIs(t, b.Bind(ctx, token, forged, "s9"), sserrors.ErrUnauthorized, name)
		_, err = b.Reserve(ctx, token)
		assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "%s: still held", name)
	}
	assert.ErrorIs(t, b.Bind(ctx, token, hold, ""), sserrors.ErrUnauthorized, "no session id")
	require.NoError(t, b.Bind(ctx, token, hold, "s1"))
	got, err := a.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, "s1", got.SessionID)
}

func testOneReserve(t *testing.T, newStore Factory) {
	ctx := context.Background()
	nodes := newStore(t, 10)
	token, err := nodes[0].Mint(ctx, Acme)
	require.NoError(t, err)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			err := spend(ctx, nodes[i%2], token, "s")
			if err == nil {
				wins.Add(1)
			} else {
				assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load(), "one Reserve wins, and binds")
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
	require.NoError(t, spend(ctx, nodes[0], minted[0], "s1"))
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

// testLost: a token revoked while it is held cannot be bound, and its
// Release does nothing.
func testLost(t *testing.T, newStore Factory) {
	ctx := context.Background()
	nodes := newStore(t, 10)
	token, err := nodes[0].Mint(ctx, Acme)
	require.NoError(t, err)
	hold, err := nodes[0].Reserve(ctx, token)
	require.NoError(t, err)
	require.NoError(t, nodes[1].Revoke(ctx, token))
	assert.ErrorIs(t, nodes[0].Bind(ctx, token, hold, "s1"), sserrors.ErrUnauthorized)
	require.NoError(t, nodes[0].Release(ctx, token, hold))
	_, err = nodes[1].Get(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "still revoked")
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
