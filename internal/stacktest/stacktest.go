// Package stacktest builds a single-node server by hand, as package service
// builds one, for the tests of the packages that service imports (and so
// cannot import it): the Redis token store and rate limiter.
package stacktest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// Stack is an in-memory limiter, a manager and a server. Its fields are
// safe for concurrent use, as their types say.
type Stack struct {
	Manager *session.Manager
	Server  *server.Server
}

// DemoAccounts are the demo's two keys, on the plans given.
func DemoAccounts(pro, trial limits.Plan) server.AccountsByKey {
	return server.AccountsByKey{
		"demo-pro-key":   {Name: "demo-pro", Plan: pro},
		"demo-trial-key": {Name: "demo-trial", Plan: trial},
	}
}

// New builds an in-memory limiter, a manager and a server from tmpl, with
// accounts and the demo's public avatar, and ends them when t ends.
func New(t testing.TB, accounts server.AccountsByKey, tmpl server.Config) *Stack {
	t.Helper()
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	lim := limits.NewMemory(limits.MemoryConfig{Capacity: 1000})
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars})
	require.NoError(t, err)
	tmpl.Manager, tmpl.Accounts, tmpl.Avatars = mgr, accounts, avatars
	srv, err := server.New(tmpl)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, mgr.Close(ctx))
		require.NoError(t, srv.Shutdown(ctx))
		require.NoError(t, lim.Close())
	})
	return &Stack{Manager: mgr, Server: srv}
}
