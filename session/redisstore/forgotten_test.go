package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/session"
)

// TestResyncForgotten: a node whose subscription was down while a session
// it knew was closed and forgotten delivers, when it reads the sessions
// again, that session's closing and closed with its own reason, and does
// not count it lost; a session whose record vanished without a note (lost
// with Redis's data) still gets store_lost.
func TestResyncForgotten(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.Client()
	a := newNode(t, srv, Config{})
	b := newNode(t, srv, Config{})
	for _, id := range []string{"stopped", "idled", "vanished"} {
		_, err := a.Insert(ctx, newRecord(id))
		require.NoError(t, err)
		for _, ev := range []fsm.Event{fsm.EventStart, fsm.EventJoin} {
			_, _, err := a.Transition(ctx, "acme", id, session.Change{Event: ev, At: t0})
			require.NoError(t, err)
		}
		waitFor(t, "b hears "+id+" connected", 5*time.Second, func() bool {
			evs := b.log.of(id)
			return len(evs) > 0 && evs[len(evs)-1].To == fsm.Connected
		})
	}

	// b stops hearing the channel.
	require.NoError(t, b.ps.Unsubscribe(ctx, b.channel))
	waitFor(t, "b unsubscribed", 5*time.Second, func() bool {
		n, err := admin.PubSubNumSub(ctx, b.channel).Result()
		return err == nil && n[b.channel] == 1
	})
	end := func(id string, r session.Reason) {
		_, _, err := a.Transition(ctx, "acme", id, session.Change{Event: fsm.EventClose, At: t0, Reason: r})
		require.NoError(t, err)
		rec, _, err := a.Transition(ctx, "acme", id, session.Change{Event: fsm.EventClosed, At: t0})
		require.NoError(t, err)
		_, err = a.Delete(ctx, "acme", id, rec.Epoch, t0)
		require.NoError(t, err)
	}
	end("stopped", session.ReasonStop)
	end("idled", session.ReasonIdle)
	noted, err := admin.Exists(ctx, b.forgottenKey("stopped"), b.forgottenKey("idled")).Result()
	require.NoError(t, err)
	require.EqualValues(t, 2, noted, "a forgotten session leaves a note")
	require.NoError(t, admin.Del(ctx, b.recKey("vanished")).Err())

	lost, err := b.resync()
	require.NoError(t, err)
	assert.Equal(t, 1, lost, "only the session without a note is lost")
	tail := func(id string) []session.Event {
		evs := b.log.of(id)
		return evs[len(evs)-3:]
	}
	for id, want := range map[string]session.Reason{"stopped": session.ReasonStop, "idled": session.ReasonIdle, "vanished": session.ReasonStoreLost} {
		evs := tail(id)
		assert.Equal(t, []fsm.State{fsm.Closing, fsm.Closed}, []fsm.State{evs[0].To, evs[1].To}, id)
		assert.Equal(t, want, evs[0].Reason, "%s: closing's reason", id)
		assert.Equal(t, want, evs[1].Reason, "%s: closed's reason", id)
		assert.True(t, evs[2].Forgotten(), "%s: forgotten", id)
	}
	n, err := admin.PTTL(ctx, b.forgottenKey("stopped")).Result()
	require.NoError(t, err)
	assert.True(t, n > 0 && n <= forgottenNoteTTL, "the note expires: %v", n)
}

// TestResyncDiscovers: a session created through another node while this
// node's subscription was down is delivered, when this node reads the
// sessions again, as one event from unknown to its current state, and its
// later events follow.
func TestResyncDiscovers(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.Client()
	a := newNode(t, srv, Config{})
	b := newNode(t, srv, Config{})
	require.NoError(t, b.ps.Unsubscribe(ctx, b.channel))
	waitFor(t, "b unsubscribed", 5*time.Second, func() bool {
		n, err := admin.PubSubNumSub(ctx, b.channel).Result()
		return err == nil && n[b.channel] == 1
	})
	for _, id := range []string{"made", "ended"} {
		_, err := a.Insert(ctx, newRecord(id))
		require.NoError(t, err)
		for _, ev := range []fsm.Event{fsm.EventStart, fsm.EventJoin} {
			_, _, err := a.Transition(ctx, "acme", id, session.Change{Event: ev, At: t0})
			require.NoError(t, err)
		}
	}
	_, _, err := a.Transition(ctx, "acme", "ended", session.Change{Event: fsm.EventClose, At: t0, Reason: session.ReasonStop})
	require.NoError(t, err)
	_, _, err = a.Transition(ctx, "acme", "ended", session.Change{Event: fsm.EventClosed, At: t0})
	require.NoError(t, err)
	require.Empty(t, b.log.of("made"))

	lost, err := b.resync()
	require.NoError(t, err)
	assert.Zero(t, lost)
	evs := b.log.of("made")
	require.Len(t, evs, 1)
	assert.Equal(t, fsm.Unknown, evs[0].From)
	assert.Equal(t, fsm.Connected, evs[0].To)
	assert.EqualValues(t, 3, evs[0].Epoch)
	assert.Empty(t, b.log.of("ended"), "a session closed meanwhile is not announced")

	// Subscribed again, b hears what follows.
	require.NoError(t, b.ps.Subscribe(ctx, b.channel))
	waitFor(t, "b subscribed", 5*time.Second, func() bool {
		n, err := admin.PubSubNumSub(ctx, b.channel).Result()
		return err == nil && n[b.channel] == 2
	})
	_, _, err = a.Transition(ctx, "acme", "made", session.Change{Event: fsm.EventClose, At: t0, Reason: session.ReasonStop})
	require.NoError(t, err)
	waitFor(t, "b hears the close", 5*time.Second, func() bool { return len(b.log.of("made")) == 2 })
	assert.Equal(t, fsm.Closing, b.log.of("made")[1].To)
}

// TestCloseRetryAfterConfig: the zero value takes the default; a negative
// one is a 400175 error.
func TestCloseRetryAfterConfig(t *testing.T) {
	srv := redistest.Start(t)
	s, err := New(srv.Client(), Config{})
	require.NoError(t, err)
	assert.Equal(t, DefaultCloseRetryAfter, s.Config().CloseRetryAfter)
	_, err = New(srv.Client(), Config{CloseRetryAfter: -time.Second})
	assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
}
