package server

import (
	"context"

	"github.com/streamsession/streamsession/session"
)

// accountKey is the context key of WithAccount; unexported, so only code
// that calls WithAccount can set it (never a client).
type accountKey struct{}

// WithAccount returns a copy of ctx that carries acct, the caller an
// embedder's middleware has already authenticated: the Server then serves
// the request as acct without reading X-Api-Key or a bearer token, so auth
// runs once. acct.Name must not be empty (an empty name is ignored). The
// realtime socket is not concerned: it is authorised by its session's
// token.
func WithAccount(ctx context.Context, acct session.Account) context.Context {
	return context.WithValue(ctx, accountKey{}, acct)
}

// accountFrom returns the account WithAccount put in ctx, if any.
func accountFrom(ctx context.Context) (session.Account, bool) {
	acct, ok := ctx.Value(accountKey{}).(session.Account)
	return acct, ok && acct.Name != ""
}
