package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/fakeclock"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/tokenstest"
	"github.com/streamsession/streamsession/service"
	"github.com/streamsession/streamsession/session"
)

// TestMemoryTokensConformance runs the TokenStore suite on the in-memory
// store.
func TestMemoryTokensConformance(t *testing.T) {
	tokenstest.Run(t, func(t *testing.T, maxPerAccount int) [2]server.TokenStore {
		s := server.NewMemoryTokens(server.MemoryTokensConfig{MaxPerAccount: func(session.Account) int { return maxPerAccount }})
		return [2]server.TokenStore{s, s}
	})
}

// TestTokensAreOpaque: neither the bearer token nor the access token of a
// session shows the account or the session id, in any encoding.
func TestTokensAreOpaque(t *testing.T) {
	svc, err := service.New(context.Background(), service.Demo(), service.Options{})
	require.NoError(t, err)
	ts := httptest.NewServer(svc.Server)
	defer ts.Close()
	defer func() { require.NoError(t, svc.Shutdown(context.Background())) }()

	post := func(path, auth string, out any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(`{}`))
		require.NoError(t, err)
		if strings.HasPrefix(auth, "sst_") {
			req.Header.Set("Authorization", "Bearer "+auth)
		} else {
			req.Header.Set("X-Api-Key", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	var minted struct {
		Data struct{ Token string } `json:"data"`
	}
	post(server.PathCreateToken, "demo-pro-key", &minted)
	var created struct {
		Data struct {
			SessionID   string `json:"session_id"`
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	post(server.PathNew, minted.Data.Token, &created)
	require.NotEmpty(t, created.Data.SessionID)
	for _, token := range []string{minted.Data.Token, created.Data.AccessToken} {
		tokenstest.AssertHides(t, token, "demo-pro")
		tokenstest.AssertHides(t, token, created.Data.SessionID)
	}
}

// TestMemoryTokensHoldLapses: a hold whose Bind never comes (its node
// died mid-way) lapses after HoldTTL and the token can be reserved again;
// the lapsed hold then binds nothing, while the new one binds.
func TestMemoryTokensHoldLapses(t *testing.T) {
	ctx := context.Background()
	clock := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := server.NewMemoryTokens(server.MemoryTokensConfig{HoldTTL: time.Minute, Now: clock.Now})
	token, err := s.Mint(ctx, session.Account{Name: "acme"})
	require.NoError(t, err)
	stale, err := s.Reserve(ctx, token)
	require.NoError(t, err)
	clock.Advance(time.Minute - time.Millisecond)
	_, err = s.Reserve(ctx, token)
	require.ErrorIs(t, err, sserrors.ErrUnauthorized, "held until the lease ends")
	clock.Advance(time.Millisecond)
	fresh, err := s.Reserve(ctx, token)
	require.NoError(t, err, "the lapsed hold gives the token back")
	require.ErrorIs(t, s.Bind(ctx, token, stale, "s-stale"), sserrors.ErrUnauthorized)
	require.NoError(t, s.Release(ctx, token, stale), "a stale Release leaves the new hold alone")
	require.NoError(t, s.Bind(ctx, token, fresh, "s1"))
	tok, err := s.Get(ctx, token)
	require.NoError(t, err)
	require.Equal(t, "s1", tok.SessionID)
}
