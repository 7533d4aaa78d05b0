package session

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
)

// finishingLimiter is a fakeLimiter whose Release, while on is set, also
// finishes the session's close in the store, as another node's timer does
// for a close it took for cut while its closer waited on the backend.
type finishingLimiter struct {
	*fakeLimiter
	store atomic.Pointer[sharedStore]
	on    atomic.Bool
}

func (l *finishingLimiter) Release(ctx context.Context, lease limits.Lease) error {
	err := l.fakeLimiter.Release(ctx, lease)
	if s := l.store.Load(); s != nil && l.on.Load() {
		rec, gerr := s.Get(ctx, lease.Account, lease.SessionID)
		if gerr == nil {
			_, _, _ = s.Transition(ctx, lease.Account, lease.SessionID, Change{Event: fsm.EventClosed, At: time.Now(), Epoch: rec.Epoch})
		}
	}
	return err
}

// TestStopFinishedElsewhere: a Stop whose close another node finished
// before its own last step answers the closed session, not an error.
func TestStopFinishedElsewhere(t *testing.T) {
	var lim *finishingLimiter
	wrap := func(f *fakeLimiter) limits.Limiter {
		lim = &finishingLimiter{fakeLimiter: f}
		return lim
	}
	sharedTest(t, wrap, func(t *testing.T, store *sharedStore, m *Manager, _ *fakeLimiter, log *eventLog) {
		lim.store.Store(store)
		s := connected(t, m, acme, CreateOptions{})
		lim.on.Store(true)
		info, err := m.Stop(context.Background(), "acme", s.ID)
		require.NoError(t, err)
		assert.Equal(t, fsm.Closed, info.State)
		assert.Equal(t, ReasonStop, info.Reason)
		assert.False(t, lim.isKept(s.ID), "the slot is released")
	})
}
