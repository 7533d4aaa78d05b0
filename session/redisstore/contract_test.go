package redisstore

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/storetest"
)

// The contract tests: session/storetest, the suite every Store passes, and
// what only a Redis store must do. Each runs on a backend: here a
// redis-server of its own, in rediscluster_test.go a Redis Cluster.

// backend is the Redis deployment the stores of one contract test share.
type backend interface {
	// node returns a watching Store with cfg (whose Prefix is empty: the
	// backend chooses it), closed at the end of the test.
	node(t testing.TB, cfg Config) *node
	// fresh returns a Store that nothing watches, under a prefix of its
	// own (so empty), closed at the end of the test.
	fresh(t testing.TB) *Store
	// keys returns the store's keys in Redis.
	keys(t testing.TB) []string
}

// serverBackend is a single redis-server, with the default prefix.
type serverBackend struct{ srv *redistest.Server }

func (b serverBackend) node(t testing.TB, cfg Config) *node { return newNode(t, b.srv, cfg) }

func (b serverBackend) fresh(t testing.TB) *Store {
	s, err := New(b.srv.Client(), Config{Prefix: "fresh" + strconv.FormatInt(freshPrefixes.Add(1), 10)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var freshPrefixes atomic.Int64

func (b serverBackend) keys(t testing.TB) []string {
	return keys(t, b.srv.Client(), DefaultPrefix)
}

// storeContract lists the contract tests, for the backends that run them.
var storeContract = []struct {
	name string
	run  func(t *testing.T, b backend)
}{
	{"storetest", testStoreSuite},
	{"redis details", testStoreRedisDetails},
	{"due", testStoreDue},
	{"closing grace", testStoreClosingGrace},
}

// TestStoreContract runs the contract tests, each on a redis-server of its
// own.
func TestStoreContract(t *testing.T) {
	for _, tc := range storeContract {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, serverBackend{redistest.Start(t)}) })
	}
}

// testStoreSuite runs session/storetest, each case on a fresh store.
func testStoreSuite(t *testing.T, b backend) {
	storetest.Run(t, func(t *testing.T) session.Store { return b.fresh(t) })
}

// testStoreRedisDetails checks what storetest leaves to the
// implementation: a bad record's code, the change feed's copies of the
// events the calls reported (dropped), and no key left of a forgotten
// session.
func testStoreRedisDetails(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.node(t, Config{})

	_, err := s.Insert(ctx, session.Record{Info: session.Info{ID: "bad", Account: "acme", State: fsm.Connected, Epoch: 1, CreatedAt: t0}})
	assert.Equal(t, sserrors.CodeInvalidParameter, sserrors.CodeOf(err))
	_, err = s.Insert(ctx, newRecord("a"))
	require.NoError(t, err)
	for _, ev := range []fsm.Event{fsm.EventStart, fsm.EventJoin, fsm.EventClose, fsm.EventClosed} {
		_, _, err = s.Transition(ctx, "acme", "a", session.Change{Event: ev, At: t0.Add(time.Minute), Reason: session.ReasonIdle})
		require.NoError(t, err)
	}
	_, err = s.Delete(ctx, "acme", "a", 5, t0.Add(13*time.Minute))
	require.NoError(t, err)

	// Every event came twice (the call's delivery, the channel's): a change
	// made through another node reaches s on the channel only, after the
	// copies (one channel, one order); then check each copy was dropped.
	_, err = b.node(t, Config{}).Insert(ctx, newRecord("barrier"))
	require.NoError(t, err)
	waitFor(t, "the channel's copies", 5*time.Second, func() bool { return len(s.log.of("barrier")) == 1 })
	require.Len(t, s.log.of("a"), 6)
	for i, e := range s.log.of("a") {
		assert.Equal(t, uint64(i+1), e.Epoch)
	}
	for _, k := range b.keys(t) {
		assert.NotContains(t, k, ":r:a", "nothing is left of a forgotten session")
	}
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
