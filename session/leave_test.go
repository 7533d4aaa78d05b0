package session

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
)

// TestLeaveKeepsSessionsOpen checks the drain path on a shared store: Leave
// stops the node's loops and subscribers but changes no session and frees
// no slot, and a later Close does not close them either.
func TestLeaveKeepsSessionsOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		lim := newFakeLimiter(1000)
		lim.ttl = 30 * time.Second
		m, _ := newTestManager(t, Config{Store: newSharedStore(), Limiter: lim, JoinTimeout: time.Minute})
		var log eventLog
		m.Subscribe(log.add)
		open := map[string]fsm.State{}
		for _, state := range []fsm.State{fsm.New, fsm.Connecting, fsm.Connected} {
			s, err := m.Create(ctx, acme, CreateOptions{})
			require.NoError(t, err)
			if state >= fsm.Connecting {
				_, err = m.Start(ctx, "acme", s.ID)
				require.NoError(t, err)
			}
			if state >= fsm.Connected {
				_, err = m.Join(ctx, "acme", s.ID)
				require.NoError(t, err)
			}
			open[s.ID] = state
		}
		stopped, err := m.Create(ctx, acme, CreateOptions{})
		require.NoError(t, err)
		_, err = m.Stop(ctx, "acme", stopped.ID)
		require.NoError(t, err)
		synctest.Wait()
		before := len(log.snapshot())

		require.NoError(t, m.Leave(ctx))
		require.NoError(t, m.Close(ctx), "Close after Leave waits for the same shutdown")
		assert.Len(t, log.snapshot(), before, "no session changed: subscribers saw nothing more")
		assert.Equal(t, len(open), lim.heldCount(), "every open session keeps its slot")
		for id, state := range open {
			got, err := m.Get(ctx, "acme", id)
			require.NoError(t, err)
			assert.Equal(t, state, got.State)
			assert.True(t, lim.isKept(id))
			assert.Equal(t, 0, lim.releaseCount(id))
		}
		assert.Equal(t, 1, lim.releaseCount(stopped.ID))

		// The loops are stopped: no timer fires on this node (the join
		// timeout has long passed).
		advance(time.Hour)
		for id, state := range open {
			got, err := m.Get(ctx, "acme", id)
			require.NoError(t, err)
			assert.Equal(t, state, got.State)
		}

		_, err = m.Create(ctx, acme, CreateOptions{})
		assert.ErrorIs(t, err, ErrManagerClosed)
		for id := range open {
			_, err = m.Stop(ctx, "acme", id)
			assert.ErrorIs(t, err, ErrManagerClosed)
		}
	})
}

// TestLeaveKeepsUnkeptSlots: a slot whose Keep failed would otherwise wait
// for this node's renewer, which Leave stops: Leave tries the Keep once
// more.
func TestLeaveKeepsUnkeptSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		lim := newFakeLimiter(1000)
		lim.ttl = 30 * time.Second
		m, _ := newTestManager(t, Config{Store: newSharedStore(), Limiter: lim})
		lim.mu.Lock()
		lim.keepErr = errUnavailableForTest
		lim.mu.Unlock()
		s, err := m.Create(ctx, acme, CreateOptions{})
		require.NoError(t, err)
		assert.False(t, lim.isKept(s.ID))
		lim.mu.Lock()
		lim.keepErr = nil
		lim.mu.Unlock()

		require.NoError(t, m.Leave(ctx))
		assert.True(t, lim.isKept(s.ID), "kept on the way out")
		got, err := m.Get(ctx, "acme", s.ID)
		require.NoError(t, err)
		assert.Equal(t, fsm.New, got.State)
	})
}

// TestCloseThenLeave checks that the first call decides: a Leave after
// Close waits for Close's shutdown, which closed every session.
func TestCloseThenLeave(t *testing.T) {
	ctx := context.Background()
	m, lim := newTestManager(t, Config{})
	s, err := m.Create(ctx, acme, CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, m.Close(ctx))
	require.NoError(t, m.Leave(ctx))
	got, err := m.Get(ctx, "acme", s.ID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Closed, got.State)
	assert.Equal(t, ReasonShutdown, got.Reason)
	assert.Equal(t, 0, lim.heldCount())
}
