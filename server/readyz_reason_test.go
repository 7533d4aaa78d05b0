package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redistokens"
	"github.com/streamsession/streamsession/session"
)

// TestReadyzSaysWhy checks that a 503 from /readyz names its cause in
// server.HeaderNotReady while the body stays the frozen 400558 envelope:
// a node whose secret in Redis was replaced by another node's (a real
// SecretKeeper on a real Redis), a backend that fails, and a drain.
func TestReadyzSaysWhy(t *testing.T) {
	ctx := context.Background()
	redis := redistest.Start(t)
	client := redis.Client()
	keeper, err := redistokens.KeepSecret(ctx, client, "")
	require.NoError(t, err)

	backendErr := error(nil)
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	mgr, err := session.NewManager(session.Config{Limiter: allowAll{}, Avatars: avatars})
	require.NoError(t, err)
	t.Cleanup(func() { mgr.Close(ctx) })
	srv, err := server.New(server.Config{
		Manager:  mgr,
		Accounts: server.AccountsByKey{"k": {Name: "me", Plan: limits.PaidPlan}},
		Avatars:  avatars,
		Ready: func(ctx context.Context) error {
			if backendErr != nil {
				return backendErr
			}
			return keeper.Err()
		},
	})
	require.NoError(t, err)
	probe := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		srv.Health().ServeHTTP(w, httptest.NewRequest(http.MethodGet, server.PathReadyz, nil))
		return w
	}
	const frozen = `{"code":400558,"message":"API connection error"}`

	w := probe()
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Empty(t, w.Header().Get(server.HeaderNotReady))

	// Redis loses its data and another node writes its own secret first.
	require.NoError(t, client.FlushAll(ctx).Err())
	other, err := redistokens.KeepSecret(ctx, client, "")
	require.NoError(t, err)
	require.NotEqual(t, keeper.Secret(), other.Secret())
	_, err = keeper.Check(ctx)
	require.NoError(t, err)
	w = probe()
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, frozen, strings.TrimSpace(w.Body.String()))
	assert.Equal(t, redistokens.ReasonSecretChanged, w.Header().Get(server.HeaderNotReady))
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	assert.NotContains(t, w.Header().Get(server.HeaderNotReady), string(keeper.Secret()))

	backendErr = errors.New("redis: connection refused")
	w = probe()
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, frozen, strings.TrimSpace(w.Body.String()))
	assert.Equal(t, server.NotReadyBackendUnavailable, w.Header().Get(server.HeaderNotReady))

	backendErr = nil
	require.NoError(t, srv.Shutdown(ctx))
	w = probe()
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, frozen, strings.TrimSpace(w.Body.String()))
	assert.Equal(t, server.NotReadyDraining, w.Header().Get(server.HeaderNotReady))
}
