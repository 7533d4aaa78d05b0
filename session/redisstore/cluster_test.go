package redisstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/session"
)

// crash stops the node as SIGKILL would: no more events, and nothing
// cleaned up in Redis.
func (s *Store) crash() {
	s.closeOnce.Do(func() {
		close(s.stop)
		if s.ps != nil {
			_ = s.ps.Close()
		}
		s.wg.Wait()
	})
}

func TestEventsReachEveryNode(t *testing.T) {
	srv := redistest.Start(t)
	eventsReachEveryNode(t, newNode(t, srv, Config{NodeID: "a"}), newNode(t, srv, Config{NodeID: "b"}))
}

// eventsReachEveryNode changes a session through b that was created
// through a: both nodes hear every change, in epoch order, and every commit
// reaches both through the store's channel (a's own too, dropped by the
// epoch guard after the call's delivery).
func eventsReachEveryNode(t *testing.T, a, b *node) {
	ctx := context.Background()
	_, err := a.Insert(ctx, newRecord("s1"))
	require.NoError(t, err)
	for _, ev := range []fsm.Event{fsm.EventStart, fsm.EventJoin, fsm.EventClose, fsm.EventClosed} {
		_, _, err := b.Transition(ctx, "acme", "s1", session.Change{Event: ev, At: t0, Reason: session.ReasonStop})
		require.NoError(t, err)
	}
	want := []fsm.State{fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed}
	// A change through each node is a barrier for the other: heard on the
	// channel only, after every earlier message (one channel, one order),
	// so by then each node has heard, and dropped, its own copies too.
	_, err = a.Insert(ctx, newRecord("barrier-a"))
	require.NoError(t, err)
	_, err = b.Insert(ctx, newRecord("barrier-b"))
	require.NoError(t, err)
	for _, n := range []*node{a, b} {
		waitFor(t, "the barriers on node "+n.NodeID(), 5*time.Second, func() bool {
			return len(n.log.of("barrier-a")) == 1 && len(n.log.of("barrier-b")) == 1
		})
		var tos []fsm.State
		for i, e := range n.log.of("s1") {
			assert.Equal(t, uint64(i+1), e.Epoch)
			tos = append(tos, e.To)
		}
		assert.Equal(t, want, tos, "node %s hears every change once, in order", n.NodeID())
	}
	// From any node.
	got, err := a.Get(ctx, "acme", "s1")
	require.NoError(t, err)
	assert.Equal(t, fsm.Closed, got.State)
	assert.Equal(t, session.ReasonStop, got.Reason)
}

func TestRangeVisitsOwnSessions(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a := newNode(t, srv, Config{NodeID: "a", Batch: 2})
	b := newNode(t, srv, Config{NodeID: "b"})
	for i := range 5 {
		_, err := a.Insert(ctx, newRecord(fmt.Sprintf("a%d", i)))
		require.NoError(t, err)
	}
	_, err := b.Insert(ctx, newRecord("b0"))
	require.NoError(t, err)
	// a1 closed through b: no longer a's to renew.
	for _, ev := range []fsm.Event{fsm.EventClose, fsm.EventClosed} {
		_, _, err := b.Transition(ctx, "acme", "a1", session.Change{Event: ev, At: t0})
		require.NoError(t, err)
	}
	_, _, err = b.Transition(ctx, "acme", "a2", session.Change{Event: fsm.EventClose, At: t0})
	require.NoError(t, err)
	visit := func(n *node) map[string]fsm.State {
		got := map[string]fsm.State{}
		require.NoError(t, n.Range(ctx, func(r session.Record) bool { got[r.ID] = r.State; return true }))
		return got
	}
	assert.Equal(t, map[string]fsm.State{"a0": fsm.New, "a2": fsm.Closing, "a3": fsm.New, "a4": fsm.New}, visit(a))
	assert.Equal(t, map[string]fsm.State{"b0": fsm.New}, visit(b))
	n := 0
	require.NoError(t, a.Range(ctx, func(session.Record) bool { n++; return false }))
	assert.Equal(t, 1, n, "fn returning false stops Range")
	list, err := b.List(ctx, "acme")
	require.NoError(t, err)
	assert.Len(t, list, 4, "listed from any node: a0, a3, a4, b0")
}

func TestReplayedScriptsApplyOnce(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := newNode(t, srv, Config{})
	rec := newRecord("r")
	nonce := s.newNonce()
	fields := insertFields(rec, s.node, nonce)
	keys := []string{s.recKey("r"), s.acctKey("acme"), s.timers, s.mine}
	args := append([]any{"r", "acme", nonce, 0, s.channel, itoa(nanos(t0))}, fields...)
	for i := range 2 {
		n, err := insertScript.Run(ctx, s.client, keys, args...).Int64()
		require.NoError(t, err)
		assert.Equal(t, int64(0), n, "run %d of the same insert succeeds", i+1)
	}
	close := func(nonce string) (int64, error) {
		res, err := transitionScript.Run(ctx, s.client, []string{s.recKey("r"), s.acctKey("acme"), s.timers}, "acme", 0,
			tables[fsm.EventClose], itoa(nanos(t0)), ceilMs(nanos(t0)), 1, nonce, 1000, s.prefix, 1000, "r", s.channel).Slice()
		if err != nil {
			return 0, err
		}
		return res[0].(int64), nil
	}
	op := s.newNonce()
	for i := range 2 {
		code, err := close(op)
		require.NoError(t, err)
		assert.Equal(t, int64(codeOK), code, "run %d of the same close succeeds", i+1)
	}
	got, err := s.Get(ctx, "acme", "r")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), got.Epoch, "applied once")
	code, err := close(s.newNonce())
	require.NoError(t, err)
	assert.Equal(t, int64(codeState), code, "another close is refused")
}

// TestDeadNodeSessionsLiveOn: the sessions of a node that died are the
// cluster's: nothing reports them for their node, and their timers fire on
// the live node at their usual deadlines.
func TestDeadNodeSessionsLiveOn(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	dead := newNode(t, srv, Config{NodeID: "dead"})
	live := newNode(t, srv, Config{NodeID: "live"})
	for _, id := range []string{"d-new", "d-connected", "d-closing", "d-closed"} {
		_, err := dead.Insert(ctx, newRecord(id))
		require.NoError(t, err)
	}
	_, err := live.Insert(ctx, newRecord("l-new"))
	require.NoError(t, err)
	step := func(id string, evs ...fsm.Event) {
		for _, ev := range evs {
			_, _, err := dead.Transition(ctx, "acme", id, session.Change{Event: ev, At: t0})
			require.NoError(t, err)
		}
	}
	step("d-connected", fsm.EventStart, fsm.EventJoin)
	step("d-closing", fsm.EventClose)
	step("d-closed", fsm.EventClose, fsm.EventClosed)
	dead.crash()

	due, _, err := live.Due(ctx, t0, nil)
	require.NoError(t, err)
	assert.Empty(t, due, "a dead node's sessions are not reported for it")
	// Idle (one minute after joining) and the closing grace (30 s): on time.
	due, _, err = live.Due(ctx, t0.Add(90*time.Second), nil)
	require.NoError(t, err)
	got := map[string]session.Timeout{}
	for _, d := range due {
		got[d.Record.ID] = d.Timeout
	}
	assert.Equal(t, map[string]session.Timeout{"d-connected": session.TimeoutIdle, "d-closing": session.TimeoutOrphaned}, got)
	// Join (five minutes after creation), for the dead node's session and
	// the live one's alike.
	due, _, err = live.Due(ctx, t0.Add(5*time.Minute), nil)
	require.NoError(t, err)
	got = map[string]session.Timeout{}
	for _, d := range due {
		got[d.Record.ID] = d.Timeout
	}
	assert.Equal(t, session.TimeoutJoin, got["d-new"])
	assert.Equal(t, session.TimeoutJoin, got["l-new"])
	for _, id := range []string{"d-new", "d-connected"} {
		r, err := live.Get(ctx, "acme", id)
		require.NoError(t, err)
		assert.True(t, r.State.Open(), "%s is still open", id)
	}
}

// TestNoHeartbeat: a node sends Redis nothing of its own accord but its
// data-loss check, one look at the marker each LossCheckInterval; only its
// Manager's timer loop polls (Due).
func TestNoHeartbeat(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.NewClient(&redis.Options{})
	hook := &countingHook{}
	client.AddHook(hook)
	s, err := New(client, Config{LossCheckInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, s.Watch(func(session.Event) {}))
	// The first look at the marker runs as Watch returns; once the marker
	// is there, its commands are counted.
	waitFor(t, "the first look at the marker", 5*time.Second, func() bool {
		n, err := srv.Client().Exists(context.Background(), s.prefix+"marker").Result()
		require.NoError(t, err)
		return n == 1
	})
	before := hook.n.Load()
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, before, hook.n.Load(), "commands sent by an idle store")
	require.NoError(t, s.Close())
	assert.Equal(t, before, hook.n.Load(), "Close sends nothing either")
}

func TestNothingLeftBehind(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a := newNode(t, srv, Config{NodeID: "a", RetentionSlack: time.Millisecond})
	b := newNode(t, srv, Config{NodeID: "b", RetentionSlack: time.Millisecond})
	for i := range 4 {
		n := a
		if i%2 == 1 {
			n = b
		}
		r := newRecord(fmt.Sprintf("s%d", i))
		r.Account = fmt.Sprintf("acct%d", i%3)
		r.Retention = 20 * time.Millisecond
		_, err := n.Insert(ctx, r)
		require.NoError(t, err)
	}
	for i := range 4 {
		id, acct := fmt.Sprintf("s%d", i), fmt.Sprintf("acct%d", i%3)
		for _, ev := range []fsm.Event{fsm.EventStart, fsm.EventJoin, fsm.EventClose, fsm.EventClosed} {
			_, _, err := a.Transition(ctx, acct, id, session.Change{Event: ev, At: t0})
			require.NoError(t, err)
		}
		if i < 2 {
			// Forgotten by the retention timer...
			_, err := b.Delete(ctx, acct, id, 5, t0)
			require.NoError(t, err)
		}
	}
	require.NoError(t, a.Close())
	// ...or, when no node did it, by Redis (retention + slack).
	waitFor(t, "the records left expire", 5*time.Second, func() bool {
		n, err := srv.Client().Exists(ctx, b.recKey("s2"), b.recKey("s3")).Result()
		require.NoError(t, err)
		return n == 0
	})
	_, err := b.Get(ctx, "acct2", "s2")
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound)
	// The next Due drops the deadlines of records gone.
	due, _, err := b.Due(ctx, time.Now(), nil)
	require.NoError(t, err)
	assert.Empty(t, due)
	require.NoError(t, b.Close())
	// The data-loss marker expires by itself (markerMinTTL) after the last
	// node looked at it, and the notes of the sessions forgotten by a node
	// after forgottenNoteTTL.
	var left []string
	for _, k := range keys(t, srv.Client(), DefaultPrefix) {
		if strings.HasPrefix(k, b.prefix+"g:") {
			ttl, err := srv.Client().PTTL(ctx, k).Result()
			require.NoError(t, err)
			assert.True(t, ttl > 0 && ttl <= forgottenNoteTTL, "%s expiry %v", k, ttl)
			continue
		}
		left = append(left, k)
	}
	assert.Equal(t, []string{b.prefix + "marker"}, left, "every session closed and forgotten, every node closed")
	ttl, err := srv.Client().PTTL(ctx, b.prefix+"marker").Result()
	require.NoError(t, err)
	assert.True(t, ttl > 0 && ttl <= markerMinTTL, "marker expiry %v, want in (0, %v]", ttl, markerMinTTL)
}

// TestResync: after the subscription reconnects, what changed meanwhile
// (messages Redis published to nobody) is delivered as one event per
// session, and a session gone meanwhile while open is lost with Redis's
// data: closing and closed with ReasonStoreLost, then forgotten.
func TestResync(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s, err := New(srv.Client(), Config{}) // not watching: the test plays the listener
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	for _, id := range []string{"moved", "same", "gone", "stopped"} {
		_, err := s.Insert(ctx, newRecord(id))
		require.NoError(t, err)
	}
	for _, ev := range []fsm.Event{fsm.EventClose, fsm.EventClosed} {
		_, _, err := s.Transition(ctx, "acme", "stopped", session.Change{Event: ev, At: t0, Reason: session.ReasonStop})
		require.NoError(t, err)
	}
	for _, ev := range []fsm.Event{fsm.EventStart, fsm.EventJoin} {
		_, _, err := s.Transition(ctx, "acme", "moved", session.Change{Event: ev, At: t0})
		require.NoError(t, err)
	}
	require.NoError(t, srv.Client().Del(ctx, s.recKey("gone")).Err())
	// What the listener had delivered before the (simulated) outage.
	log := &eventLog{}
	s.mu.Lock()
	s.notify = log.add
	s.known = map[string]*seen{
		"moved":   {account: "acme", state: fsm.New, epoch: 1},
		"same":    {account: "acme", state: fsm.New, epoch: 1},
		"gone":    {account: "acme", state: fsm.Connected, epoch: 3},
		"stopped": {account: "acme", state: fsm.New, epoch: 1},
	}
	s.mu.Unlock()
	lost, err := s.resync()
	require.NoError(t, err)
	assert.Equal(t, 1, lost)
	got := map[string][]session.Event{}
	for _, e := range log.snapshot() {
		e.At = time.Time{}
		got[e.SessionID] = append(got[e.SessionID], e)
	}
	assert.Equal(t, map[string][]session.Event{
		"moved": {{SessionID: "moved", Account: "acme", From: fsm.New, To: fsm.Connected, Epoch: 3}},
		"stopped": {
			{SessionID: "stopped", Account: "acme", From: fsm.New, To: fsm.Closing, Epoch: 2, Reason: session.ReasonStop},
			{SessionID: "stopped", Account: "acme", From: fsm.Closing, To: fsm.Closed, Epoch: 3, Reason: session.ReasonStop},
		},
		"gone": {
			{SessionID: "gone", Account: "acme", From: fsm.Connected, To: fsm.Closing, Epoch: 4, Reason: session.ReasonStoreLost},
			{SessionID: "gone", Account: "acme", From: fsm.Closing, To: fsm.Closed, Epoch: 5, Reason: session.ReasonStoreLost},
			{SessionID: "gone", Account: "acme", From: fsm.Closed, To: fsm.Unknown, Epoch: 6, Reason: session.ReasonStoreLost},
		},
	}, got)
	assert.True(t, s.known["gone"].gone, "a forgotten session is remembered as such (its late events are dropped)")
	assert.Equal(t, uint64(3), s.known["moved"].epoch)
}

// TestSubscriptionRecovers: a dropped subscription connection comes back
// and events flow again.
func TestSubscriptionRecovers(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a := newNode(t, srv, Config{})
	b := newNode(t, srv, Config{})
	_, err := b.Insert(ctx, newRecord("x"))
	require.NoError(t, err)
	waitFor(t, "the insert", 5*time.Second, func() bool { return len(a.log.of("x")) == 1 })
	require.NoError(t, srv.Client().Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err())
	waitFor(t, "events after the reconnection", 15*time.Second, func() bool {
		_, _ = b.Touch(ctx, "acme", "x", t0) // no event; keeps the test's loop honest
		if len(a.log.of("x")) == 1 {
			if _, _, err := b.Transition(ctx, "acme", "x", session.Change{Event: fsm.EventStart, At: t0}); err != nil {
				return false
			}
		}
		return len(a.log.of("x")) == 2
	})
	assert.Equal(t, []fsm.State{fsm.New, fsm.Connecting}, states(a.log.of("x")))
}
