package redislimiter_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/redislimiter"
)

// TestKeptSlotKeepsAccountKeys: while an account holds a kept slot its keys
// do not expire (a session may outlast their 40 days); the release of its
// last kept slot gives the expiry back.
func TestKeptSlotKeepsAccountKeys(t *testing.T) {
	r := newRig(t, redislimiter.Config{}, nil)
	bg := context.Background()
	sess := req("a", "kept", trial)
	k, err := r.lim.Acquire(bg, sess)
	require.NoError(t, err)
	require.True(t, k.Granted())
	n, err := r.lim.Acquire(bg, req("a", "leased", trial))
	require.NoError(t, err)
	require.True(t, n.Granted())
	require.NoError(t, r.lim.Started(bg, k.Lease))
	for _, kind := range []string{"slots", "run"} {
		assert.Positive(t, r.admin.PTTL(bg, r.key(kind, "a")).Val().Milliseconds(), "%s expires before the Keep", kind)
	}

	require.NoError(t, r.lim.Keep(bg, k.Lease))
	for _, kind := range []string{"slots", "run"} {
		assert.Equal(t, int64(-1), int64(r.admin.PTTL(bg, r.key(kind, "a")).Val()), "%s has no expiry while a slot is kept", kind)
	}
	again, err := r.lim.Acquire(bg, sess)
	require.NoError(t, err)
	assert.True(t, again.Lease.Expires.IsZero(), "the kept slot, still kept")

	require.NoError(t, r.lim.Release(bg, k.Lease))
	for _, kind := range []string{"slots", "run"} {
		assert.Positive(t, r.admin.PTTL(bg, r.key(kind, "a")).Val().Milliseconds(), "%s expires again after the last kept slot's release", kind)
	}
}

// TestKeptSlotKeysStayWithoutExpiry: the calls of the account's other
// sessions (an acquire, a renewal) do not give its keys an expiry back while
// it holds a kept slot; otherwise the kept slot and its trial start would
// vanish with the keys 40 days after the account's last such call.
func TestKeptSlotKeysStayWithoutExpiry(t *testing.T) {
	r := newRig(t, redislimiter.Config{}, nil)
	bg := context.Background()
	k, err := r.lim.Acquire(bg, req("a", "kept", trial))
	require.NoError(t, err)
	require.True(t, k.Granted())
	require.NoError(t, r.lim.Started(bg, k.Lease))
	require.NoError(t, r.lim.Keep(bg, k.Lease))

	other, err := r.lim.Acquire(bg, req("a", "leased", trial))
	require.NoError(t, err)
	require.True(t, other.Granted())
	_, err = r.lim.Renew(bg, other.Lease)
	require.NoError(t, err)
	for _, kind := range []string{"slots", "run"} {
		assert.Equal(t, int64(-1), int64(r.admin.PTTL(bg, r.key(kind, "a")).Val()), "%s has no expiry while a slot is kept", kind)
	}

	require.NoError(t, r.lim.Release(bg, k.Lease))
	for _, kind := range []string{"slots", "run"} {
		assert.Positive(t, r.admin.PTTL(bg, r.key(kind, "a")).Val().Milliseconds(), "%s expires again after the last kept slot's release", kind)
	}
}

// TestReleaseDuringFailOpenKeep: a Release made while the Keep that puts a
// fail-open lease into Redis is in flight wins, whichever of the two scripts
// Redis runs first: no kept slot is left behind a released lease (nothing
// would ever free it).
func TestReleaseDuringFailOpenKeep(t *testing.T) {
	for _, op := range []string{"keep", "renew"} {
		t.Run(op, func(t *testing.T) {
			r := newRig(t, redislimiter.Config{Failure: limits.FailOpen, Capacity: 1}, nil)
			bg := context.Background()
			r.srv.Kill()
			got, err := r.lim.Acquire(bg, req("a", "open", paid))
			require.NoError(t, err)
			require.True(t, got.Granted())
			r.srv.Restart()
			warm(t, r)

			// The Keep (or Renew) leaves with the adoption and is held on
			// its way; the Release overtakes it on the other flusher.
			h := hold(t, r)
			done := make(chan error, 1)
			go func() {
				if op == "keep" {
					done <- r.lim.Keep(bg, got.Lease)
					return
				}
				_, err := r.lim.Renew(bg, got.Lease)
				done <- err
			}()
			<-h.held
			require.NoError(t, r.lim.Release(bg, got.Lease))
			h.release()
			assert.ErrorIs(t, <-done, limits.ErrLeaseExpired, "the lease was released meanwhile")

			assert.Zero(t, r.admin.ZCard(bg, r.key("slots", "a")).Val(), "no slot left behind")
			other, err := r.lim.Acquire(bg, req("b", "t", paid))
			require.NoError(t, err)
			assert.True(t, other.Granted(), "the capacity is free")
		})
	}
}

// TestFailOpenLeaseFoundExpiredIsForgotten: a fail-open lease whose acquire
// reached Redis after all (its reply was lost), and whose slot expired
// there, is lost for good: the Renew or Keep that finds it expired forgets
// it, and no later call adopts it again.
func TestFailOpenLeaseFoundExpiredIsForgotten(t *testing.T) {
	for _, op := range []string{"keep", "renew"} {
		t.Run(op, func(t *testing.T) {
			r := newClockedRig(t, redislimiter.Config{Failure: limits.FailOpen, LeaseTTL: time.Minute}, nil)
			bg := context.Background()
			r.srv.Kill()
			got, err := r.lim.Acquire(bg, req("a", "open", paid))
			require.NoError(t, err)
			require.True(t, got.Granted())
			r.srv.Restart()
			// The acquire ran after all (it dated the data set), and its
			// slot expired since.
			acquired := got.Lease.Expires.Add(-time.Minute).UnixMilli()
			require.NoError(t, r.admin.Set(bg, "{"+r.cfg.Prefix+"}:epoch", acquired, 0).Err())
			expired := float64(r.clock.Now().Add(-time.Second).UnixMilli())
			require.NoError(t, r.admin.ZAdd(bg, r.key("slots", "a"), redis.Z{Score: expired, Member: "open"}).Err())

			call := func() error {
				if op == "keep" {
					return r.lim.Keep(bg, got.Lease)
				}
				_, err := r.lim.Renew(bg, got.Lease)
				return err
			}
			require.ErrorIs(t, call(), limits.ErrLeaseExpired)
			require.ErrorIs(t, call(), limits.ErrLeaseExpired, "a lost lease is not adopted afterwards")
			assert.Zero(t, r.admin.ZCard(bg, r.key("slots", "a")).Val())
		})
	}
}
