package redisstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"
)

var avatars = session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}

var acme = session.Account{Name: "acme", Plan: limits.PaidPlan}

// countingLimiter counts the keeps and releases of each session of a
// shared in-memory limiter (the nodes of these tests share one process).
type countingLimiter struct {
	limits.Limiter
	mu       sync.Mutex
	releases map[string]int
	keeps    map[string]int
	renewals int
}

func (l *countingLimiter) Keep(ctx context.Context, lease limits.Lease) error {
	l.mu.Lock()
	l.keeps[lease.SessionID]++
	l.mu.Unlock()
	return l.Limiter.Keep(ctx, lease)
}

func (l *countingLimiter) Renew(ctx context.Context, lease limits.Lease) (limits.Lease, error) {
	l.mu.Lock()
	l.renewals++
	l.mu.Unlock()
	return l.Limiter.Renew(ctx, lease)
}

func (l *countingLimiter) kept(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keeps[id]
}

func (l *countingLimiter) Release(ctx context.Context, lease limits.Lease) error {
	l.mu.Lock()
	l.releases[lease.SessionID]++
	l.mu.Unlock()
	return l.Limiter.Release(ctx, lease)
}

func (l *countingLimiter) released(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.releases[id]
}

// cluster is Managers on Redis stores sharing one limiter.
type cluster struct {
	srv      *redistest.Server
	limiter  *countingLimiter
	managers []*session.Manager
	stores   []*Store
	logs     []*eventLog
}

func newCluster(t *testing.T, n int, scfg session.Config, cfg Config) *cluster {
	t.Helper()
	c := &cluster{
		srv:     redistest.Start(t),
		limiter: &countingLimiter{Limiter: limits.NewMemory(limits.MemoryConfig{Capacity: 100}), releases: map[string]int{}, keeps: map[string]int{}},
	}
	t.Cleanup(func() { _ = c.limiter.Close() })
	for range n {
		s, err := New(c.srv.Client(), cfg)
		require.NoError(t, err)
		mcfg := scfg
		mcfg.Limiter, mcfg.Avatars, mcfg.Store = c.limiter, avatars, s
		m, err := session.NewManager(mcfg)
		require.NoError(t, err)
		log := &eventLog{}
		m.Subscribe(log.add)
		t.Cleanup(func() {
			require.NoError(t, m.Close(context.Background()))
			require.NoError(t, s.Close())
		})
		c.managers = append(c.managers, m)
		c.stores = append(c.stores, s)
		c.logs = append(c.logs, log)
	}
	return c
}

func states(evs []session.Event) []fsm.State {
	var out []fsm.State
	for _, e := range evs {
		out = append(out, e.To)
	}
	return out
}

func TestManagersShareSessions(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 3, session.Config{}, Config{})
	a, b, cc := c.managers[0], c.managers[1], c.managers[2]
	s, err := a.Create(ctx, acme, session.CreateOptions{})
	require.NoError(t, err)
	assert.Equal(t, 1, c.limiter.kept(s.ID), "the slot is kept once the session is recorded")
	_, err = b.Start(ctx, "acme", s.ID)
	require.NoError(t, err)
	_, err = a.Join(ctx, "acme", s.ID) // the socket opens on a
	require.NoError(t, err)
	list, err := cc.List(ctx, "acme")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, fsm.Connected, list[0].State)

	_, err = b.Start(ctx, "acme", s.ID)
	assert.Equal(t, sserrors.CodeSessionStateConnected, sserrors.CodeOf(err), "the state is the cluster's")
	got, err := cc.Stop(ctx, "acme", s.ID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Closed, got.State)
	assert.Equal(t, session.ReasonStop, got.Reason)
	assert.Equal(t, 1, c.limiter.released(s.ID))

	want := []fsm.State{fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed}
	for i, log := range c.logs {
		waitFor(t, "every node's subscriber hears the close", 5*time.Second, func() bool { return len(log.of(s.ID)) == 5 })
		assert.Equal(t, want, states(log.of(s.ID)), "node %d", i)
	}
	list, err = a.List(ctx, "acme")
	require.NoError(t, err)
	assert.Empty(t, list)
	_, err = a.Stop(ctx, "acme", s.ID)
	assert.Equal(t, sserrors.CodeSessionStateClosed, sserrors.CodeOf(err))
}

func TestTimersFireOnceForTheCluster(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 3, session.Config{JoinTimeout: 100 * time.Millisecond, Retention: 200 * time.Millisecond}, Config{})
	var ids []string
	for i := range 6 {
		s, err := c.managers[i%3].Create(ctx, acme, session.CreateOptions{})
		require.NoError(t, err)
		ids = append(ids, s.ID)
	}
	for _, id := range ids {
		waitFor(t, "the join timer closes and retention forgets", 10*time.Second, func() bool {
			_, err := c.managers[0].Get(ctx, "acme", id)
			return sserrors.CodeOf(err) == sserrors.CodeSessionNotFound
		})
		assert.Equal(t, 1, c.limiter.released(id), "released once")
		for i, log := range c.logs {
			waitFor(t, "the forgotten event", 5*time.Second, func() bool { return len(log.of(id)) == 4 })
			evs := log.of(id)
			assert.Equal(t, []fsm.State{fsm.New, fsm.Closing, fsm.Closed, fsm.Unknown}, states(evs), "node %d: one close", i)
			assert.Equal(t, session.ReasonJoin, evs[1].Reason)
		}
	}
	recs, err := c.srv.Client().Keys(ctx, "{"+DefaultPrefix+"}:s:r:*").Result()
	require.NoError(t, err)
	assert.Empty(t, recs, "no record left")
}

// TestDeadNodesSessionsLiveOn: a node dies (SIGKILL) after it recorded
// sessions and kept their slots, as its Manager does. Its sessions stay
// open and keep their slots; another node serves them; one whose client
// never comes back ends by its join timer, at its usual deadline; a close
// it left half done is finished; each slot is released once.
func TestDeadNodesSessionsLiveOn(t *testing.T) {
	ctx := context.Background()
	cfg := Config{ClosingGrace: 200 * time.Millisecond} // every node's
	clk := newManualClock()
	c := newCluster(t, 1, session.Config{Clock: clk}, cfg)
	survivor := c.managers[0]
	dead, err := New(c.srv.Client(), cfg)
	require.NoError(t, err)
	ids := []string{"served", "abandoned", "half-closed"}
	for _, id := range ids {
		d, err := c.limiter.Acquire(ctx, limits.Request{Account: "acme", Plan: limits.PaidPlan, SessionID: id})
		require.NoError(t, err)
		require.True(t, d.Granted())
		r := newRecord(id)
		r.CreatedAt = clk.Now()
		if id == "abandoned" {
			r.JoinTimeout = 500 * time.Millisecond
		}
		_, err = dead.Insert(ctx, r)
		require.NoError(t, err)
		require.NoError(t, c.limiter.Keep(ctx, d.Lease))
	}
	_, _, err = dead.Transition(ctx, "acme", "half-closed", session.Change{Event: fsm.EventClose, At: clk.Now(), Reason: session.ReasonStop})
	require.NoError(t, err)
	dead.crash()

	// The client of "served" comes back through the survivor.
	_, err = survivor.Start(ctx, "acme", "served")
	require.NoError(t, err)
	_, err = survivor.Join(ctx, "acme", "served")
	require.NoError(t, err)

	// The clock reaches the join deadline of "abandoned", exactly, and
	// passes the closing grace of "half-closed".
	clk.Advance(500 * time.Millisecond)
	waitFor(t, "the join timer closes the abandoned session", 5*time.Second, func() bool {
		r, err := survivor.Get(ctx, "acme", "abandoned")
		return err == nil && r.State == fsm.Closed
	})
	r, _ := survivor.Get(ctx, "acme", "abandoned")
	assert.Equal(t, session.ReasonJoin, r.Reason)
	assert.Equal(t, r.CreatedAt.Add(500*time.Millisecond), r.ClosedAt, "closed at its join deadline, not later")
	waitFor(t, "the half-done close is finished", 5*time.Second, func() bool {
		r, err := survivor.Get(ctx, "acme", "half-closed")
		return err == nil && r.State == fsm.Closed
	})
	r, _ = survivor.Get(ctx, "acme", "half-closed")
	assert.Equal(t, session.ReasonStop, r.Reason, "a close left half done is finished with its reason")
	for _, id := range []string{"abandoned", "half-closed"} {
		assert.Equal(t, 1, c.limiter.released(id), "%s released once", id)
	}

	// Long after the old heartbeat TTL, the served session is open and
	// holds its slot; a stop through the survivor frees it at once.
	clk.Advance(time.Second)
	got, err := survivor.Get(ctx, "acme", "served")
	require.NoError(t, err)
	assert.Equal(t, fsm.Connected, got.State)
	assert.Zero(t, c.limiter.released("served"))
	assert.Equal(t, 1, c.limiter.Limiter.(*limits.Memory).InUse(), "only the served session's slot is held")
	_, err = survivor.Stop(ctx, "acme", "served")
	require.NoError(t, err)
	assert.Equal(t, 1, c.limiter.released("served"))
	assert.Zero(t, c.limiter.Limiter.(*limits.Memory).InUse())
}

// TestCloseDeliversBeforeReturning: Manager.Close closes the node's
// sessions, and its subscribers hear closing and closed before Close
// returns (the server sends them to the sockets before it shuts them).
func TestCloseDeliversBeforeReturning(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 2, session.Config{}, Config{})
	a := c.managers[0]
	var ids []string
	for range 3 {
		s, err := a.Create(ctx, acme, session.CreateOptions{})
		require.NoError(t, err)
		_, err = c.managers[1].Start(ctx, "acme", s.ID) // another node's change in between
		require.NoError(t, err)
		ids = append(ids, s.ID)
	}
	waitFor(t, "a hears b's starts", 5*time.Second, func() bool {
		for _, id := range ids {
			if len(c.logs[0].of(id)) != 2 {
				return false
			}
		}
		return true
	})
	require.NoError(t, a.Close(ctx))
	for _, id := range ids {
		assert.Equal(t, []fsm.State{fsm.New, fsm.Connecting, fsm.Closing, fsm.Closed}, states(c.logs[0].of(id)))
		assert.Equal(t, session.ReasonShutdown, c.logs[0].of(id)[3].Reason)
	}
}

// TestKeptSlotsNeedNoRenewal: with leases of 150 ms, open sessions on two
// nodes outlive many lease TTLs without a single renewal: their slots are
// kept.
func TestKeptSlotsNeedNoRenewal(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	clk := newManualClock() // the managers' and the limiter's
	const leaseTTL = 150 * time.Millisecond
	mem := limits.NewMemory(limits.MemoryConfig{LeaseTTL: leaseTTL, Now: clk.Now})
	t.Cleanup(func() { _ = mem.Close() })
	lim := &countingLimiter{Limiter: mem, releases: map[string]int{}, keeps: map[string]int{}}
	var managers []*session.Manager
	for range 2 {
		s, err := New(srv.Client(), Config{})
		require.NoError(t, err)
		m, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars, Store: s, Clock: clk})
		require.NoError(t, err)
		t.Cleanup(func() {
			require.NoError(t, m.Close(ctx))
			require.NoError(t, s.Close())
		})
		managers = append(managers, m)
	}
	var ids []string
	for i := range 6 {
		s, err := managers[i%2].Create(ctx, acme, session.CreateOptions{})
		require.NoError(t, err)
		ids = append(ids, s.ID)
	}
	// More than six lease TTLs, a third of one at a time: each step is a
	// beat at which a lease not kept would have to be renewed.
	for range 20 {
		clk.Advance(leaseTTL / 3)
	}
	lim.mu.Lock()
	renewals := lim.renewals
	lim.mu.Unlock()
	assert.Zero(t, renewals)
	for _, id := range ids {
		l, err := mem.Renew(ctx, limits.Lease{Account: "acme", SessionID: id})
		require.NoError(t, err, "the slot of %s is held", id)
		assert.True(t, l.Expires.IsZero(), "and kept")
	}
	list, err := managers[1].List(ctx, "acme")
	require.NoError(t, err)
	assert.Len(t, list, len(ids))
	for _, id := range ids {
		assert.Equal(t, 1, lim.kept(id))
	}
}
