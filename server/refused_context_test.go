package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/session"
)

type traceKey struct{}

// TestRefusedCarriesRequestContext: the Refused hook receives the refused
// request's context, with what an embedder's middleware put in it.
func TestRefusedCarriesRequestContext(t *testing.T) {
	e := newEnv(t, nil)
	withTrace := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), traceKey{}, "trace-1")))
		})
	}
	req := httptest.NewRequest(http.MethodPost, PathNew, strings.NewReader(`{}`))
	req.Header.Set("X-Api-Key", "no-such-key")
	rec := httptest.NewRecorder()
	withTrace(e.srv).ServeHTTP(rec, req)
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	select {
	case ref := <-e.refused:
		require.NotNil(t, ref.Context)
		assert.Equal(t, "trace-1", ref.Context.Value(traceKey{}))
	default:
		t.Fatal("the Refused hook was not called")
	}
}

// TestWithAccount: an account an embedder's middleware resolved reaches the
// server through the request's context, with no API key; without it, or
// with an account without a name, the same request is refused.
func TestWithAccount(t *testing.T) {
	e := newEnv(t, nil)
	acct := testAccts["key-acme"]
	resolved := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(WithAccount(r.Context(), acct)))
		})
	}
	call := func(h http.Handler) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, PathNew, strings.NewReader(`{}`))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := call(resolved(e.srv))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	list, err := e.mgr.List(context.Background(), acct.Name)
	require.NoError(t, err)
	assert.Len(t, list, 1, "the session is the resolved account's")

	assert.Equal(t, http.StatusUnauthorized, call(e.srv).Code, "no account, no key")
	empty := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(WithAccount(r.Context(), session.Account{Plan: acct.Plan})))
		})
	}
	assert.Equal(t, http.StatusUnauthorized, call(empty(e.srv)).Code, "an account without a name is ignored")
}
