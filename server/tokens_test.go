package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

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

// TestMemoryTokensSpendGivesBackOnPanic: a create that panics leaves the
// token unused (net/http recovers the handler's panic and the server goes
// on), so the client's retry with it is served instead of refused until the
// token expires.
func TestMemoryTokensSpendGivesBackOnPanic(t *testing.T) {
	ctx := context.Background()
	s := server.NewMemoryTokens(server.MemoryTokensConfig{})
	acct := session.Account{Name: "acme"}
	token, err := s.Mint(ctx, acct)
	require.NoError(t, err)
	noDiscard := func(context.Context, string) error { return nil }

	require.PanicsWithValue(t, "create failed", func() {
		_ = s.Spend(ctx, token, func(context.Context, session.Account) (string, error) { panic("create failed") }, noDiscard)
	})
	got, err := s.Check(ctx, token, "any-session")
	require.NoError(t, err, "the token is unused again")
	require.Equal(t, "acme", got)
	require.NoError(t, s.Spend(ctx, token, func(context.Context, session.Account) (string, error) { return "s1", nil }, noDiscard))
	tok, err := s.Get(ctx, token)
	require.NoError(t, err)
	require.Equal(t, "s1", tok.SessionID)
}
