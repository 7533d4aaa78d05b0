package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/session"
)

// TestClosedBoundedPerAccount: past MaxClosedPerAccount, an account's
// oldest closed sessions are forgotten in the order they closed (all at
// the same instant here), answer 10006, leave no key behind and reach the
// watchers as closed → unknown, in the same round trip as the close; another account's are not touched.
func TestClosedBoundedPerAccount(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := newNode(t, srv, Config{MaxClosedPerAccount: 3})
	closeOne := func(account, id string) {
		t.Helper()
		rec := newRecord(id)
		rec.Account = account
		_, err := s.Insert(ctx, rec)
		require.NoError(t, err)
		for _, ev := range []fsm.Event{fsm.EventClose, fsm.EventClosed} {
			_, _, err := s.Transition(ctx, account, id, session.Change{Event: ev, At: t0, Reason: session.ReasonStop})
			require.NoError(t, err)
		}
	}
	closeOne("globex", "g0")
	ids := []string{"s9", "s8", "s7", "s6", "s5"} // closing order is not the ids' order
	for _, id := range ids {
		closeOne("acme", id)
	}
	for _, id := range ids[:2] {
		_, err := s.Get(ctx, "acme", id)
		assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, id)
		// The forgetting reaches every node on the channel.
		waitFor(t, "closed → unknown of "+id, 5*time.Second, func() bool {
			evs := s.log.of(id)
			last := evs[len(evs)-1]
			return last.From == fsm.Closed && last.To == fsm.Unknown && last.Epoch == 4
		})
		for _, k := range keys(t, srv.Client(), DefaultPrefix) {
			assert.NotContains(t, k, ":r:"+id)
		}
	}
	for _, id := range ids[2:] {
		rec, err := s.Get(ctx, "acme", id)
		require.NoError(t, err, id)
		assert.Equal(t, fsm.Closed, rec.State)
	}
	rec, err := s.Get(ctx, "globex", "g0")
	require.NoError(t, err)
	assert.Equal(t, fsm.Closed, rec.State)

	// A closed session forgotten by its retention timer leaves room.
	rec, err = s.Get(ctx, "acme", "s7")
	require.NoError(t, err)
	_, err = s.Delete(ctx, "acme", "s7", rec.Epoch, t0)
	require.NoError(t, err)
	for i := range 3 {
		closeOne("acme", fmt.Sprintf("n%d", i))
	}
	for _, id := range []string{"s6", "s5"} {
		_, err := s.Get(ctx, "acme", id)
		assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, id)
	}
	for i := range 3 {
		_, err := s.Get(ctx, "acme", fmt.Sprintf("n%d", i))
		assert.NoError(t, err)
	}
}
