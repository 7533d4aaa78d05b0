package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
