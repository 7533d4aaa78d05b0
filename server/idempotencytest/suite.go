// Package idempotencytest is the contract suite of server.IdempotencyStore:
// every implementation (the in-memory one, server/redisidem) runs Run
// against a fresh store, and RunBounded against a store with a given bound
// of stored answers per account.
package idempotencytest

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
)

// Run checks the contract of server.IdempotencyStore on stores from
// newStore, one per subtest.
func Run(t *testing.T, newStore func(t *testing.T) server.IdempotencyStore) {
	ctx := context.Background()
	key := func(account, k, body string) server.IdempotencyKey {
		return server.IdempotencyKey{Account: account, Key: k, BodyHash: sha256.Sum256([]byte(body))}
	}
	answer := &server.StoredAnswer{Status: 200, ContentType: "application/json", Body: []byte(`{"code":100}`)}

	t.Run("ReplayAfterFinish", func(t *testing.T) {
		s := newStore(t)
		k := key("acme", "k1", "{}")
		res, err := s.Begin(ctx, k)
		require.NoError(t, err)
		require.Nil(t, res.Replay)
		require.NotEmpty(t, res.Owner)
		require.NoError(t, s.Finish(ctx, k, res.Owner, answer))
		again, err := s.Begin(ctx, k)
		require.NoError(t, err)
		require.NotNil(t, again.Replay)
		assert.Equal(t, *answer, *again.Replay)
	})

	t.Run("AnotherBodyIsRefused", func(t *testing.T) {
		s := newStore(t)
		k := key("acme", "k1", "{}")
		res, err := s.Begin(ctx, k)
		require.NoError(t, err)
		_, err = s.Begin(ctx, key("acme", "k1", `{"quality":"low"}`))
		assert.ErrorIs(t, err, sserrors.ErrInvalidParameter, "in flight")
		require.NoError(t, s.Finish(ctx, k, res.Owner, answer))
		_, err = s.Begin(ctx, key("acme", "k1", `{"quality":"low"}`))
		assert.ErrorIs(t, err, sserrors.ErrInvalidParameter, "stored")
	})

	t.Run("KeysArePerAccount", func(t *testing.T) {
		s := newStore(t)
		a, err := s.Begin(ctx, key("acme", "k1", "{}"))
		require.NoError(t, err)
		require.NoError(t, s.Finish(ctx, key("acme", "k1", "{}"), a.Owner, answer))
		b, err := s.Begin(ctx, key("globex", "k1", `{"other":1}`))
		require.NoError(t, err)
		assert.Nil(t, b.Replay, "another account's key is another key")
		assert.NotEmpty(t, b.Owner)
	})

	t.Run("FinishWithoutAnswerFreesTheKey", func(t *testing.T) {
		s := newStore(t)
		k := key("acme", "k1", "{}")
		res, err := s.Begin(ctx, k)
		require.NoError(t, err)
		require.NoError(t, s.Finish(ctx, k, res.Owner, nil))
		again, err := s.Begin(ctx, key("acme", "k1", `{"other":1}`))
		require.NoError(t, err, "a freed key takes any body")
		assert.Nil(t, again.Replay)
		assert.NotEmpty(t, again.Owner)
	})

	t.Run("FinishByAnotherOwnerIsIgnored", func(t *testing.T) {
		s := newStore(t)
		k := key("acme", "k1", "{}")
		res, err := s.Begin(ctx, k)
		require.NoError(t, err)
		require.NoError(t, s.Finish(ctx, k, res.Owner+"x", answer))
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err = s.Begin(wctx, k)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "still in flight")
	})

	t.Run("WaiterIsBoundedByItsContext", func(t *testing.T) {
		s := newStore(t)
		k := key("acme", "k1", "{}")
		_, err := s.Begin(ctx, k)
		require.NoError(t, err)
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = s.Begin(wctx, k)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 5*time.Second)
	})

	t.Run("ConcurrentCallsHaveOneOwner", func(t *testing.T) {
		s := newStore(t)
		k := key("acme", "k1", "{}")
		const n = 20
		var (
			mu      sync.Mutex
			owners  int
			replays int
			wg      sync.WaitGroup
		)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				res, err := s.Begin(wctx, k)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if res.Replay != nil {
					replays++
					assert.Equal(t, *answer, *res.Replay)
					return
				}
				owners++
				assert.NoError(t, s.Finish(ctx, k, res.Owner, answer))
			}()
		}
		wg.Wait()
		assert.Equal(t, 1, owners, "exactly one call runs")
		assert.Equal(t, n-1, replays)
	})

	t.Run("WaiterRunsWhenTheOwnerFails", func(t *testing.T) {
		s := newStore(t)
		k := key("acme", "k1", "{}")
		first, err := s.Begin(ctx, k)
		require.NoError(t, err)
		got := make(chan server.Reservation, 1)
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			res, err := s.Begin(wctx, k)
			assert.NoError(t, err)
			got <- res
		}()
		require.NoError(t, s.Finish(ctx, k, first.Owner, nil))
		res := <-got
		assert.Nil(t, res.Replay, "a failure is not replayed")
		assert.NotEmpty(t, res.Owner, "the waiter runs the call itself")
	})
}

// RunBounded checks the bound of stored answers per account, and the
// scope of keys, on stores from newStore, each holding at most
// maxKeysPerAccount stored answers per account: past the bound, storing an
// answer forgets the account's oldest (its key runs again), never another
// account's; a key of one Scope never replays another Scope's answer.
func RunBounded(t *testing.T, newStore func(t *testing.T, maxKeysPerAccount int) server.IdempotencyStore) {
	ctx := context.Background()
	answer := &server.StoredAnswer{Status: 200, ContentType: "application/json", Body: []byte(`{"code":100}`)}
	key := func(account, scope, k string) server.IdempotencyKey {
		return server.IdempotencyKey{Account: account, Scope: scope, Key: k, BodyHash: sha256.Sum256([]byte("{}"))}
	}
	store := func(t *testing.T, s server.IdempotencyStore, k server.IdempotencyKey) {
		t.Helper()
		res, err := s.Begin(ctx, k)
		require.NoError(t, err)
		require.Nil(t, res.Replay, "%s runs", k.Key)
		require.NoError(t, s.Finish(ctx, k, res.Owner, answer))
	}
	replayed := func(t *testing.T, s server.IdempotencyStore, k server.IdempotencyKey) bool {
		t.Helper()
		res, err := s.Begin(ctx, k)
		require.NoError(t, err)
		if res.Replay == nil {
			require.NoError(t, s.Finish(ctx, k, res.Owner, nil))
		}
		return res.Replay != nil
	}

	t.Run("OldestIsForgotten", func(t *testing.T) {
		s := newStore(t, 3)
		store(t, s, key("globex", "", "g1"))
		for _, k := range []string{"a1", "a2", "a3", "a4"} {
			store(t, s, key("acme", "", k))
		}
		assert.False(t, replayed(t, s, key("acme", "", "a1")), "the oldest was forgotten")
		for _, k := range []string{"a2", "a3", "a4"} {
			assert.True(t, replayed(t, s, key("acme", "", k)), "%s is kept", k)
		}
		assert.True(t, replayed(t, s, key("globex", "", "g1")), "another account's answers are not touched")
	})

	t.Run("ScopesDoNotMeet", func(t *testing.T) {
		s := newStore(t, 10)
		store(t, s, key("acme", "token-a", "k"))
		assert.False(t, replayed(t, s, key("acme", "token-b", "k")), "another token")
		assert.False(t, replayed(t, s, key("acme", "", "k")), "the API key")
		assert.True(t, replayed(t, s, key("acme", "token-a", "k")), "the same token")
	})
}
