package server

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/session"
)

func TestMemoryTokens(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	store := NewMemoryTokens(MemoryTokensConfig{TTL: time.Minute, Now: clock.Now})
	acct := session.Account{Name: "acme", Plan: proPlan}

	token, err := store.Mint(ctx, acct)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(token, "sst_"))
	other, err := store.Mint(ctx, acct)
	require.NoError(t, err)
	assert.NotEqual(t, token, other)

	got, err := store.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, Token{Account: acct}, got)

	_, err = store.Get(ctx, "sst_nope")
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)

	// Claim, then Unclaim, then Claim and Bind.
	_, err = store.Claim(ctx, token)
	require.NoError(t, err)
	_, err = store.Claim(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "claimed twice")
	require.NoError(t, store.Unclaim(ctx, token))
	assert.ErrorIs(t, store.Unclaim(ctx, token), sserrors.ErrUnauthorized, "not claimed")
	_, err = store.Claim(ctx, token)
	require.NoError(t, err)
	require.NoError(t, store.Bind(ctx, token, "s1"))
	assert.ErrorIs(t, store.Bind(ctx, token, "s2"), sserrors.ErrUnauthorized, "bound once")
	_, err = store.Claim(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "spent")
	got, err = store.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, Token{Account: acct, SessionID: "s1"}, got)

	// Idle expiry: every use restarts the minute.
	clock.Advance(59 * time.Second)
	_, err = store.Get(ctx, token)
	require.NoError(t, err)
	clock.Advance(59 * time.Second)
	_, err = store.Get(ctx, token)
	require.NoError(t, err)
	_, err = store.Get(ctx, other)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "unused for two minutes")
	clock.Advance(time.Minute)
	_, err = store.Get(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
	assert.Equal(t, 0, store.Len(), "expired tokens are deleted when met")

	require.NoError(t, store.Revoke(ctx, "sst_never"))
	fresh, err := store.Mint(ctx, acct)
	require.NoError(t, err)
	require.NoError(t, store.Revoke(ctx, fresh))
	_, err = store.Get(ctx, fresh)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
}

func TestMemoryTokensBounded(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	store := NewMemoryTokens(MemoryTokensConfig{TTL: time.Minute, MaxTokens: 3, Now: clock.Now})
	for range 3 {
		_, err := store.Mint(ctx, session.Account{Name: "a"})
		require.NoError(t, err)
	}
	_, err := store.Mint(ctx, session.Account{Name: "a"})
	assert.ErrorIs(t, err, sserrors.ErrMovioAPIExceedRateLimit)
	assert.Equal(t, 429, sserrors.StatusOf(err))
	clock.Advance(time.Minute)
	_, err = store.Mint(ctx, session.Account{Name: "a"})
	require.NoError(t, err, "expired tokens are swept to make room")
	assert.Equal(t, 1, store.Len())
}

// TestMemoryTokensOneClaim: of many concurrent claims of one token exactly
// one succeeds.
func TestMemoryTokensOneClaim(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryTokens(MemoryTokensConfig{})
	token, err := store.Mint(ctx, session.Account{Name: "a"})
	require.NoError(t, err)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if _, err := store.Claim(ctx, token); err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
}

func TestAccessTokens(t *testing.T) {
	a := accessTokens{secret: []byte("secret")}
	token := a.mint("acme", "s1")
	account, ok := a.verify(token, "s1")
	assert.True(t, ok)
	assert.Equal(t, "acme", account)
	assert.NotContains(t, token, "s1")

	tests := []struct {
		name, token, id string
	}{
		{"another session", token, "s2"},
		{"no session", token, ""},
		{"empty token", "", "s1"},
		{"no separator", strings.ReplaceAll(token, ".", ""), "s1"},
		{"another account", a.mint("globex", "s1")[:strings.Index(a.mint("globex", "s1"), ".")] + token[strings.Index(token, "."):], "s1"},
		{"another secret", accessTokens{secret: []byte("other")}.mint("acme", "s1"), "s1"},
		{"bad base64", "!!!." + token[strings.Index(token, ".")+1:], "s1"},
		{"truncated mac", token[:len(token)-2], "s1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok := a.verify(tt.token, tt.id)
			assert.False(t, ok)
		})
	}
	// Nodes sharing a secret accept each other's tokens.
	_, ok = accessTokens{secret: []byte("secret")}.verify(token, "s1")
	assert.True(t, ok)
}

func TestShortHash(t *testing.T) {
	h := ShortHash("0123456789abcdef0123456789abcdef")
	assert.Len(t, h, 12)
	assert.Equal(t, h, ShortHash("0123456789abcdef0123456789abcdef"), "stable")
	assert.NotEqual(t, h, ShortHash("0123456789abcdef0123456789abcdee"))
	assert.Equal(t, "", ShortHash(""))
}
