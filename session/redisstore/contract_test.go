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

// The contract tests repeat session's TestMemoryStoreContract and
// TestMemoryStoreDue against Redis (session has no exported store suite),
// plus what only a shared store must do. Each runs on a backend: here a
// redis-server of its own, in rediscluster_test.go a Redis Cluster.

// backend is the Redis deployment the stores of one contract test share.
type backend interface {
	// node returns a watching Store with cfg (whose Prefix is empty: the
	// backend chooses it), closed at the end of the test.
	node(t testing.TB, cfg Config) *node
	// keys returns the store's keys in Redis.
	keys(t testing.TB) []string
}

// serverBackend is a single redis-server, with the default prefix.
type serverBackend struct{ srv *redistest.Server }

func (b serverBackend) node(t testing.TB, cfg Config) *node { return newNode(t, b.srv, cfg) }

func (b serverBackend) keys(t testing.TB) []string {
	return keys(t, b.srv.Client(), DefaultPrefix)
}

// storeContract lists the contract tests, for the backends that run them.
var storeContract = []struct {
	name string
	run  func(t *testing.T, b backend)
}{
	{"contract", testStoreContract},
	{"list order", testStoreListOrder},
	{"due", testStoreDue},
	{"closing grace", testStoreClosingGrace},
}

func TestStoreContract(t *testing.T) { testStoreContract(t, serverBackend{redistest.Start(t)}) }

func TestStoreListOrder(t *testing.T) { testStoreListOrder(t, serverBackend{redistest.Start(t)}) }

func TestStoreDue(t *testing.T) { testStoreDue(t, serverBackend{redistest.Start(t)}) }

func TestStoreClosingGrace(t *testing.T) {
	testStoreClosingGrace(t, serverBackend{redistest.Start(t)})
}

func testStoreContract(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.node(t, Config{})
	assert.Error(t, s.Watch(func(session.Event) {}), "one manager per store")

	_, err := s.Insert(ctx, session.Record{ID: "bad", Account: "acme", State: fsm.Connected, Epoch: 1, CreatedAt: t0})
	assert.Equal(t, sserrors.CodeInvalidParameter, sserrors.CodeOf(err))
	rec, err := s.Insert(ctx, newRecord("a"))
	require.NoError(t, err)
	assert.Equal(t, newRecord("a"), rec)
	got, err := s.Get(ctx, "acme", "a")
	require.NoError(t, err)
	assert.Equal(t, newRecord("a"), got, "the record reads back exactly")
	_, err = s.Insert(ctx, newRecord("a"))
	assert.ErrorIs(t, err, session.ErrExists)
	list, err := s.List(ctx, "acme")
	require.NoError(t, err)
	assert.Len(t, list, 1, "a failed insert leaves no trace in the account index")

	_, err = s.Get(ctx, "other", "a")
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound)
	_, _, err = s.Transition(ctx, "other", "a", session.Change{Event: fsm.EventStart, At: t0})
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "another account's session is unknown")
	_, err = s.Touch(ctx, "other", "a", t0)
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound)

	// An illegal event: the state's error, the current record, nothing changed.
	got, from, err := s.Transition(ctx, "acme", "a", session.Change{Event: fsm.EventJoin, At: t0})
	assert.Equal(t, sserrors.CodeSessionStateNew, sserrors.CodeOf(err))
	assert.Equal(t, fsm.New, from)
	assert.Equal(t, uint64(1), got.Epoch)
	_, _, err = s.Transition(ctx, "acme", "a", session.Change{Event: fsm.Event(42), At: t0})
	assert.Equal(t, sserrors.CodeSessionStateNew, sserrors.CodeOf(err), "an event outside the enum is refused")

	// A conditional change on a stale epoch.
	_, _, err = s.Transition(ctx, "acme", "a", session.Change{Event: fsm.EventStart, At: t0, Epoch: 7})
	assert.ErrorIs(t, err, session.ErrConflict)

	got, from, err = s.Transition(ctx, "acme", "a", session.Change{Event: fsm.EventStart, At: t0.Add(time.Second), Epoch: 1})
	require.NoError(t, err)
	assert.Equal(t, fsm.New, from)
	assert.Equal(t, fsm.Connecting, got.State)
	assert.Equal(t, uint64(2), got.Epoch)
	assert.Equal(t, t0.Add(time.Second), got.StartedAt)

	// Touch counts only on connected.
	got, err = s.Touch(ctx, "acme", "a", t0.Add(time.Minute))
	require.NoError(t, err)
	assert.True(t, got.LastActivity.IsZero())
	_, _, err = s.Transition(ctx, "acme", "a", session.Change{Event: fsm.EventJoin, At: t0.Add(2 * time.Second)})
	require.NoError(t, err)
	got, _ = s.Touch(ctx, "acme", "a", t0.Add(time.Minute))
	assert.Equal(t, t0.Add(time.Minute), got.LastActivity)
	got, _ = s.Touch(ctx, "acme", "a", t0.Add(30*time.Second))
	assert.Equal(t, t0.Add(time.Minute), got.LastActivity, "activity never moves back")
	got, _ = s.Touch(ctx, "acme", "a", t0.Add(time.Minute+time.Nanosecond))
	assert.Equal(t, t0.Add(time.Minute+time.Nanosecond), got.LastActivity, "nanoseconds are kept exactly")
	assert.Equal(t, uint64(3), got.Epoch, "touch is not a transition")

	// Delete only a closed session at its epoch.
	_, err = s.Delete(ctx, "acme", "a", 3, t0)
	assert.Equal(t, sserrors.CodeSessionStateConnected, sserrors.CodeOf(err))
	_, _, err = s.Transition(ctx, "acme", "a", session.Change{Event: fsm.EventClose, At: t0.Add(3 * time.Minute), Reason: session.ReasonIdle})
	require.NoError(t, err)
	list, _ = s.List(ctx, "acme")
	assert.Empty(t, list, "closing is not listed")
	got, _, err = s.Transition(ctx, "acme", "a", session.Change{Event: fsm.EventClosed, At: t0.Add(3 * time.Minute)})
	require.NoError(t, err)
	assert.Equal(t, session.ReasonIdle, got.Reason)
	assert.Equal(t, t0.Add(3*time.Minute), got.ClosedAt)
	_, err = s.Delete(ctx, "acme", "a", 4, t0)
	assert.ErrorIs(t, err, session.ErrConflict)
	_, err = s.Delete(ctx, "acme", "a", 5, t0.Add(13*time.Minute))
	require.NoError(t, err)
	_, err = s.Get(ctx, "acme", "a")
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound)

	// Every event came twice (the call's delivery, the channel's): wait
	// until the channel's copies are in, then check each was dropped.
	waitFor(t, "the channel's copies", 5*time.Second, func() bool { return s.fromChannel.Load() == 6 })
	require.Len(t, s.log.of("a"), 6)
	var tos []fsm.State
	for i, e := range s.log.of("a") {
		assert.Equal(t, uint64(i+1), e.Epoch)
		assert.Equal(t, "a", e.SessionID)
		assert.Equal(t, "acme", e.Account)
		tos = append(tos, e.To)
	}
	assert.Equal(t, []fsm.State{fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed, fsm.Unknown}, tos)
	evs := s.log.of("a")
	assert.Equal(t, session.ReasonIdle, evs[3].Reason)
	assert.Equal(t, t0.Add(3*time.Minute), evs[4].At)
	for _, k := range b.keys(t) {
		assert.NotContains(t, k, ":r:a", "nothing is left of a forgotten session")
	}
}

func testStoreListOrder(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.node(t, Config{})
	// Inserted out of time order: sorted by CreatedAt, ties in insertion order.
	for _, tc := range []struct {
		id string
		at time.Time
	}{{"late", t0.Add(time.Second)}, {"tie1", t0}, {"tie2", t0}, {"early", t0.Add(-time.Second)}} {
		r := newRecord(tc.id)
		r.CreatedAt = tc.at
		_, err := s.Insert(ctx, r)
		require.NoError(t, err)
	}
	other := newRecord("x")
	other.Account = "other"
	_, err := s.Insert(ctx, other)
	require.NoError(t, err)
	list, err := s.List(ctx, "acme")
	require.NoError(t, err)
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	assert.Equal(t, []string{"early", "tie1", "tie2", "late"}, ids)
	list, err = s.List(ctx, "nobody")
	require.NoError(t, err)
	assert.Empty(t, list)
}

func testStoreDue(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.node(t, Config{ClaimTTL: time.Minute})
	_, next, err := s.Due(ctx, t0.Add(10*time.Minute), nil)
	require.NoError(t, err)
	assert.Equal(t, t0.Add(10*time.Minute+DefaultPollInterval), next, "nothing to wait for but the poll")

	for _, id := range []string{"a", "b", "c"} {
		_, err := s.Insert(ctx, newRecord(id))
		require.NoError(t, err)
	}
	select {
	case <-s.Wake():
	case <-time.After(5 * time.Second):
		t.Fatal("an earlier deadline wakes the loop")
	}
	// c connects, so its join deadline no longer applies.
	_, _, _ = s.Transition(ctx, "acme", "c", session.Change{Event: fsm.EventStart, At: t0})
	_, _, _ = s.Transition(ctx, "acme", "c", session.Change{Event: fsm.EventJoin, At: t0})
	due, next, err := s.Due(ctx, t0.Add(30*time.Second), nil)
	require.NoError(t, err)
	assert.Empty(t, due)
	assert.Equal(t, t0.Add(35*time.Second), next, "the poll comes before c's idle deadline")
	due, next, err = s.Due(ctx, t0.Add(59*time.Second), nil)
	require.NoError(t, err)
	assert.Empty(t, due)
	assert.Equal(t, t0.Add(time.Minute), next, "c's idle deadline")

	// Activity moves c's deadline without touching the deadline set; when
	// the old deadline comes, it is re-armed.
	_, _ = s.Touch(ctx, "acme", "c", t0.Add(50*time.Second))
	due, next, _ = s.Due(ctx, t0.Add(time.Minute), nil)
	assert.Empty(t, due)
	assert.Equal(t, t0.Add(65*time.Second), next, "the poll")
	due, next, _ = s.Due(ctx, t0.Add(109*time.Second), nil)
	assert.Empty(t, due)
	assert.Equal(t, t0.Add(110*time.Second), next, "the re-armed idle deadline")

	due, _, _ = s.Due(ctx, t0.Add(5*time.Minute), make([]session.Due, 0, 1))
	require.Len(t, due, 1, "cap(buf) bounds a batch")
	due2, next, _ := s.Due(ctx, t0.Add(5*time.Minute), nil)
	due = append(due, due2...)
	got := map[string]session.Timeout{}
	for _, d := range due {
		got[d.Record.ID] = d.Timeout
	}
	assert.Equal(t, map[string]session.Timeout{"a": session.TimeoutJoin, "b": session.TimeoutJoin, "c": session.TimeoutIdle}, got)
	for _, d := range due {
		at, _ := d.Record.NextTimeout()
		assert.Equal(t, at, d.At)
	}
	assert.Equal(t, t0.Add(5*time.Minute+DefaultPollInterval), next)
	due, _, _ = s.Due(ctx, t0.Add(5*time.Minute+30*time.Second), nil)
	assert.Empty(t, due, "claimed deadlines are not reported again within the claim")
	due, _, _ = s.Due(ctx, t0.Add(6*time.Minute), nil)
	assert.Len(t, due, 3, "a claim whose session did not change expires: its node died while acting")

	// Acting on them (closing) re-arms them with the deadline of the state
	// entered.
	_, _, err = s.Transition(ctx, "acme", "a", session.Change{Event: fsm.EventClose, At: t0.Add(6 * time.Minute), Epoch: 1})
	require.NoError(t, err)
	_, _, err = s.Transition(ctx, "acme", "a", session.Change{Event: fsm.EventClosed, At: t0.Add(6 * time.Minute)})
	require.NoError(t, err)
	due, _, _ = s.Due(ctx, t0.Add(15*time.Minute), nil)
	assert.Len(t, due, 2, "b and c again, a not yet")
	due, _, _ = s.Due(ctx, t0.Add(16*time.Minute), nil)
	require.Len(t, due, 3)
	for _, d := range due {
		if d.Record.ID == "a" {
			assert.Equal(t, session.TimeoutRetention, d.Timeout)
			assert.Equal(t, t0.Add(16*time.Minute), d.At)
		}
	}
}

func testStoreClosingGrace(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.node(t, Config{ClosingGrace: time.Minute})
	_, err := s.Insert(ctx, newRecord("a"))
	require.NoError(t, err)
	_, _, err = s.Transition(ctx, "acme", "a", session.Change{Event: fsm.EventClose, At: t0, Reason: session.ReasonStop})
	require.NoError(t, err)
	due, _, err := s.Due(ctx, t0.Add(59*time.Second), nil)
	require.NoError(t, err)
	assert.Empty(t, due)
	due, _, err = s.Due(ctx, t0.Add(time.Minute), nil)
	require.NoError(t, err)
	require.Len(t, due, 1, "a close left half done is reported")
	assert.Equal(t, session.TimeoutOrphaned, due[0].Timeout)
	assert.Equal(t, fsm.Closing, due[0].Record.State)
}
