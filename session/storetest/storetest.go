// Package storetest is the contract suite of session.Store: any
// implementation runs it from its own tests to prove that it honours the
// contract written on session.Store, so that a Manager behaves the same on
// it as on session.MemoryStore.
//
// Start with Run. An implementation's test gives Run a factory that builds
// a fresh, empty store that nothing watches yet:
//
//	func TestStoreContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) session.Store {
//			return session.NewMemoryStore(session.MemoryStoreConfig{})
//		})
//	}
//
// The suite drives the store the way a Manager does: it calls Watch once,
// then Insert, Get, List, Transition, Touch, Delete, Range and Due with
// record times of its own (years away from the real time), and checks the
// answers, the errors (by errors.Is and catalog code) and the Events the
// store reports. It checks what every store must do and nothing more: a
// store may deliver its Events after the call that made the change (the
// suite waits up to five seconds for them), may return a next deadline
// earlier than the one it knows of (polling), may report a deadline again
// once it has a reason to (a claim that expired), and may refuse a bad
// record with any error.
//
// Every case is a subtest with a store of its own; cases do not call
// t.Parallel.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// EventWait bounds how long the suite waits for the Events of a change.
const EventWait = 5 * time.Second

// Run runs the contract suite against the stores newStore builds, each case
// as a subtest of t with a store of its own. newStore receives the
// subtest's t: it may register cleanups on it (closing the store, stopping
// a server) and must fail through it when it cannot build a store. The
// store it returns must be empty and not watched yet.
func Run(t *testing.T, newStore func(t *testing.T) session.Store) {
	t.Helper()
	for _, c := range []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"WatchOnce", testWatchOnce},
		{"InsertAndGet", testInsertAndGet},
		{"OtherAccountIsUnknown", testOtherAccount},
		{"Lifecycle", testLifecycle},
		{"IllegalEventChangesNothing", testIllegalEvent},
		{"ConditionalChange", testConditional},
		{"Touch", testTouch},
		{"Delete", testDelete},
		{"ListOrder", testListOrder},
		{"ListClosed", testListClosed},
		{"Range", testRange},
		{"Due", testDue},
		{"ConcurrentCloses", testConcurrentCloses},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &env{t: t, ctx: context.Background(), s: newStore(t)}
			if c.name != "WatchOnce" {
				require.NoError(t, e.s.Watch(e.log.add), "Watch")
			}
			c.run(t, e)
		})
	}
}

// t0 is the suite's "now": record times are the caller's, so a store must
// work on any instant.
var t0 = time.Date(2031, time.March, 1, 12, 0, 0, 0, time.UTC)

// env is one case's store and the Events it reported.
type env struct {
	t   *testing.T
	ctx context.Context
	s   session.Store
	log eventLog
}

// newRecord returns a new session of account "acme" created at t0.
func newRecord(id string) session.Record {
	return session.Record{
		Info: session.Info{
			ID: id, Account: "acme", AvatarID: "avatar", State: fsm.New, Epoch: 1, Paid: true, CreatedAt: t0,
			IdleTimeout: time.Minute, DurationLimit: 10 * time.Minute,
		},
		JoinTimeout: 5 * time.Minute, Retention: 10 * time.Minute,
	}
}

func (e *env) insert(rec session.Record) session.Record {
	e.t.Helper()
	got, err := e.s.Insert(e.ctx, rec)
	require.NoError(e.t, err, "Insert(%s)", rec.ID)
	return got
}

func (e *env) transition(id string, ch session.Change) session.Record {
	e.t.Helper()
	rec, _, err := e.s.Transition(e.ctx, "acme", id, ch)
	require.NoError(e.t, err, "Transition(%s, %v)", id, ch.Event)
	return rec
}

// close moves a session to closing then closed at at.
func (e *env) close(id string, at time.Time, reason session.Reason) session.Record {
	e.t.Helper()
	e.transition(id, session.Change{Event: fsm.EventClose, At: at, Reason: reason})
	return e.transition(id, session.Change{Event: fsm.EventClosed, At: at})
}

// waitEvents waits until the store has reported n Events of id and returns
// them.
func (e *env) waitEvents(id string, n int) []session.Event {
	e.t.Helper()
	deadline := time.Now().Add(EventWait)
	for {
		evs := e.log.of(id)
		if len(evs) >= n || time.Now().After(deadline) {
			require.Len(e.t, evs, n, "the Events of %s", id)
			return evs
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventLog collects what a store reports to its watcher.
type eventLog struct {
	mu     sync.Mutex
	events []session.Event
}

func (l *eventLog) add(ev session.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *eventLog) of(id string) []session.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []session.Event
	for _, ev := range l.events {
		if ev.SessionID == id {
			out = append(out, ev)
		}
	}
	return out
}

func testWatchOnce(t *testing.T, e *env) {
	require.NoError(t, e.s.Watch(e.log.add))
	assert.Error(t, e.s.Watch(func(session.Event) {}), "a second Watch: a Store serves one Manager")
}

func testInsertAndGet(t *testing.T, e *env) {
	bad := newRecord("bad")
	bad.State = fsm.Connected
	_, err := e.s.Insert(e.ctx, bad)
	assert.Error(t, err, "a record not in state new")
	_, err = e.s.Get(e.ctx, "acme", "bad")
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "a refused insert stores nothing")

	want := newRecord("a")
	want.CreatedAt = t0.Add(time.Nanosecond) // nanoseconds are kept exactly
	want.DisableIdleTimeout = true
	want.Label = "mode=LITE; sandbox=true" // opaque, kept as given
	want.PlanName = "pro"                  // kept for the close hook's billing
	assert.Equal(t, want, e.insert(want), "Insert returns the record as stored")
	got, err := e.s.Get(e.ctx, "acme", "a")
	require.NoError(t, err)
	assert.Equal(t, want, got, "the record reads back exactly")

	_, err = e.s.Insert(e.ctx, newRecord("a"))
	assert.ErrorIs(t, err, session.ErrExists)
	list, err := e.s.List(e.ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, []session.Record{want}, list, "a failed insert leaves no trace in the account's list")
	evs := e.waitEvents("a", 1)
	assert.Equal(t, session.Event{SessionID: "a", Account: "acme", From: fsm.Unknown, To: fsm.New, Epoch: 1, At: want.CreatedAt}, evs[0])
}

func testOtherAccount(t *testing.T, e *env) {
	e.insert(newRecord("a"))
	for _, acct := range []string{"other", ""} {
		_, err := e.s.Get(e.ctx, acct, "a")
		assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "Get by account %q", acct)
		_, _, err = e.s.Transition(e.ctx, acct, "a", session.Change{Event: fsm.EventStart, At: t0})
		assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "Transition by account %q", acct)
		_, err = e.s.Touch(e.ctx, acct, "a", t0)
		assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "Touch by account %q", acct)
		_, err = e.s.Delete(e.ctx, acct, "a", 1, t0)
		assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "Delete by account %q", acct)
		list, err := e.s.List(e.ctx, acct)
		require.NoError(t, err)
		assert.Empty(t, list, "List of account %q", acct)
	}
	_, err := e.s.Get(e.ctx, "acme", "nobody")
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "an unknown id")
	_, _, err = e.s.Transition(e.ctx, "acme", "nobody", session.Change{Event: fsm.EventStart, At: t0})
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "an unknown id")
	got, err := e.s.Get(e.ctx, "acme", "a")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), got.Epoch, "nothing changed")
}

func testLifecycle(t *testing.T, e *env) {
	e.insert(newRecord("a"))
	steps := []struct {
		ch      session.Change
		from    fsm.State
		check   func(r session.Record) time.Time // the field the state entered sets
		listed  bool
		entered fsm.State
	}{
		{session.Change{Event: fsm.EventStart, At: t0.Add(time.Second)}, fsm.New,
			func(r session.Record) time.Time { return r.StartedAt }, true, fsm.Connecting},
		{session.Change{Event: fsm.EventJoin, At: t0.Add(2 * time.Second)}, fsm.Connecting,
			func(r session.Record) time.Time { return r.LastActivity }, true, fsm.Connected},
		{session.Change{Event: fsm.EventClose, At: t0.Add(3 * time.Second), Reason: session.ReasonIdle}, fsm.Connected,
			nil, false, fsm.Closing},
		{session.Change{Event: fsm.EventClosed, At: t0.Add(4 * time.Second)}, fsm.Closing,
			func(r session.Record) time.Time { return r.ClosedAt }, false, fsm.Closed},
	}
	for i, st := range steps {
		rec, from, err := e.s.Transition(e.ctx, "acme", "a", st.ch)
		require.NoError(t, err, "step %d", i)
		assert.Equal(t, st.from, from, "step %d: the state left", i)
		assert.Equal(t, st.entered, rec.State, "step %d", i)
		assert.Equal(t, uint64(i+2), rec.Epoch, "step %d: one more per transition", i)
		if st.check != nil {
			assert.Equal(t, st.ch.At, st.check(rec), "step %d: the time of the state entered", i)
		}
		got, err := e.s.Get(e.ctx, "acme", "a")
		require.NoError(t, err)
		assert.Equal(t, rec, got, "step %d: Get reads the record Transition returned", i)
		list, err := e.s.List(e.ctx, "acme")
		require.NoError(t, err)
		assert.Equal(t, st.listed, len(list) == 1, "step %d: only open sessions are listed", i)
	}
	final, err := e.s.Get(e.ctx, "acme", "a")
	require.NoError(t, err)
	assert.Equal(t, session.ReasonIdle, final.Reason)
	assert.Equal(t, t0.Add(time.Second), final.StartedAt, "earlier times are kept")
	assert.Equal(t, t0.Add(2*time.Second), final.LastActivity)

	evs := e.waitEvents("a", 5)
	for i, ev := range evs {
		assert.Equal(t, uint64(i+1), ev.Epoch, "event %d", i)
		assert.Equal(t, "acme", ev.Account)
		if i > 0 {
			assert.Equal(t, evs[i-1].To, ev.From, "event %d follows the one before", i)
			assert.Equal(t, steps[i-1].ch.At, ev.At, "event %d: At is Change.At", i)
		}
	}
	assert.Equal(t, fsm.Closed, evs[4].To)
	assert.Equal(t, session.ReasonNone, evs[1].Reason, "no reason while open")
	assert.Equal(t, session.ReasonIdle, evs[3].Reason, "the reason on closing")
	assert.Equal(t, session.ReasonIdle, evs[4].Reason, "and on closed")
}

func testIllegalEvent(t *testing.T, e *env) {
	e.insert(newRecord("a"))
	for _, ev := range []fsm.Event{fsm.EventJoin, fsm.EventClosed, fsm.Event(42)} {
		rec, from, err := e.s.Transition(e.ctx, "acme", "a", session.Change{Event: ev, At: t0})
		assert.Equal(t, sserrors.CodeSessionStateNew, sserrors.CodeOf(err), "event %v in new", ev)
		assert.Equal(t, fsm.New, from, "event %v", ev)
		assert.Equal(t, fsm.New, rec.State, "the current record, event %v", ev)
		assert.Equal(t, uint64(1), rec.Epoch, "event %v", ev)
	}
	e.close("a", t0, session.ReasonStop)
	_, _, err := e.s.Transition(e.ctx, "acme", "a", session.Change{Event: fsm.EventStart, At: t0})
	assert.Equal(t, sserrors.CodeSessionStateClosed, sserrors.CodeOf(err))
	_, _, err = e.s.Transition(e.ctx, "acme", "a", session.Change{Event: fsm.EventClose, At: t0})
	assert.Equal(t, sserrors.CodeSessionStateClosed, sserrors.CodeOf(err), "closing twice")
	e.waitEvents("a", 3)
}

func testConditional(t *testing.T, e *env) {
	e.insert(newRecord("a"))
	rec, _, err := e.s.Transition(e.ctx, "acme", "a", session.Change{Event: fsm.EventStart, At: t0, Epoch: 7})
	assert.ErrorIs(t, err, session.ErrConflict, "a stale epoch")
	got, _ := e.s.Get(e.ctx, "acme", "a")
	assert.Equal(t, fsm.New, got.State, "a conflict changes nothing")
	rec, _, err = e.s.Transition(e.ctx, "acme", "a", session.Change{Event: fsm.EventStart, At: t0, Epoch: 1})
	require.NoError(t, err, "the current epoch")
	assert.Equal(t, uint64(2), rec.Epoch)
	_, _, err = e.s.Transition(e.ctx, "acme", "a", session.Change{Event: fsm.EventClose, At: t0, Epoch: 1})
	assert.ErrorIs(t, err, session.ErrConflict, "the epoch moved on")
	e.waitEvents("a", 2)
}

func testTouch(t *testing.T, e *env) {
	e.insert(newRecord("a"))
	got, err := e.s.Touch(e.ctx, "acme", "a", t0.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, fsm.New, got.State, "the record, whose state says the activity did not count")
	assert.True(t, got.LastActivity.IsZero(), "no activity before connected")
	e.transition("a", session.Change{Event: fsm.EventStart, At: t0})
	e.transition("a", session.Change{Event: fsm.EventJoin, At: t0.Add(2 * time.Second)})
	for _, tc := range []struct {
		at, want time.Time
		why      string
	}{
		{t0.Add(time.Minute), t0.Add(time.Minute), "later activity counts"},
		{t0.Add(30 * time.Second), t0.Add(time.Minute), "activity never moves back"},
		{t0.Add(time.Minute + time.Nanosecond), t0.Add(time.Minute + time.Nanosecond), "nanoseconds are kept exactly"},
	} {
		got, err := e.s.Touch(e.ctx, "acme", "a", tc.at)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got.LastActivity, tc.why)
		assert.Equal(t, uint64(3), got.Epoch, "touch is not a transition")
	}
	got, _ = e.s.Get(e.ctx, "acme", "a")
	assert.Equal(t, t0.Add(time.Minute+time.Nanosecond), got.LastActivity)
	e.close("a", t0.Add(2*time.Minute), session.ReasonStop)
	got, err = e.s.Touch(e.ctx, "acme", "a", t0.Add(3*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, fsm.Closed, got.State)
	assert.Equal(t, t0.Add(time.Minute+time.Nanosecond), got.LastActivity, "no activity once closed")
	assert.Len(t, e.waitEvents("a", 5), 5, "Touch reports no Event")
}

func testDelete(t *testing.T, e *env) {
	e.insert(newRecord("a"))
	e.transition("a", session.Change{Event: fsm.EventStart, At: t0})
	_, err := e.s.Delete(e.ctx, "acme", "a", 2, t0)
	assert.Equal(t, sserrors.CodeSessionStateConnecting, sserrors.CodeOf(err), "only a closed session")
	closed := e.close("a", t0.Add(time.Minute), session.ReasonStop)
	_, err = e.s.Delete(e.ctx, "acme", "a", closed.Epoch-1, t0)
	assert.ErrorIs(t, err, session.ErrConflict, "a stale epoch")
	rec, err := e.s.Delete(e.ctx, "acme", "a", closed.Epoch, t0.Add(11*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, closed, rec, "the record as it was")
	_, err = e.s.Get(e.ctx, "acme", "a")
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "forgotten")
	_, err = e.s.Delete(e.ctx, "acme", "a", closed.Epoch, t0.Add(11*time.Minute))
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound, "deleting twice")
	evs := e.waitEvents("a", 5)
	assert.Equal(t, session.Event{SessionID: "a", Account: "acme", From: fsm.Closed, To: fsm.Unknown,
		Epoch: closed.Epoch + 1, At: t0.Add(11 * time.Minute), Reason: session.ReasonStop}, evs[4])
	e.insert(newRecord("a")) // the id is free again
}

func testListOrder(t *testing.T, e *env) {
	// Inserted out of time order: sorted by CreatedAt, ties in insertion
	// order.
	for _, tc := range []struct {
		id string
		at time.Time
	}{{"late", t0.Add(time.Second)}, {"tie1", t0}, {"tie2", t0}, {"early", t0.Add(-time.Second)}, {"closed", t0}} {
		r := newRecord(tc.id)
		r.CreatedAt = tc.at
		e.insert(r)
	}
	e.close("closed", t0, session.ReasonStop)
	other := newRecord("x")
	other.Account = "other"
	e.insert(other)
	list, err := e.s.List(e.ctx, "acme")
	require.NoError(t, err)
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	assert.Equal(t, []string{"early", "tie1", "tie2", "late"}, ids)
	list[0].ID = "changed"
	again, _ := e.s.List(e.ctx, "acme")
	assert.Equal(t, "early", again[0].ID, "the slice is the caller's")
}

func testRange(t *testing.T, e *env) {
	open := map[string]bool{}
	for i := range 10 {
		id := fmt.Sprint("s", i)
		e.insert(newRecord(id))
		open[id] = true
	}
	e.transition("s1", session.Change{Event: fsm.EventClose, At: t0}) // closing: still visited
	e.close("s2", t0, session.ReasonStop)
	delete(open, "s2")

	seen := map[string]bool{}
	require.NoError(t, e.s.Range(e.ctx, func(r session.Record) bool {
		assert.False(t, seen[r.ID], "%s visited twice", r.ID)
		seen[r.ID] = true
		got, err := e.s.Get(e.ctx, r.Account, r.ID) // fn may call the store
		assert.NoError(t, err)
		assert.Equal(t, got.State, r.State)
		return true
	}))
	assert.Equal(t, open, seen, "every session not closed, once")

	n := 0
	require.NoError(t, e.s.Range(e.ctx, func(session.Record) bool { n++; return n < 3 }))
	assert.Equal(t, 3, n, "Range stops when fn returns false")
}

func testDue(t *testing.T, e *env) {
	late := t0.Add(10 * time.Minute)
	due, next, err := e.s.Due(e.ctx, late, nil)
	require.NoError(t, err)
	assert.Empty(t, due, "nothing stored")
	assert.True(t, next.IsZero() || next.After(late), "next = %v: zero, or a poll after now", next)

	for _, id := range []string{"a", "b", "c"} {
		e.insert(newRecord(id))
	}
	if wake := e.s.Wake(); wake != nil {
		select {
		case <-wake:
		case <-time.After(EventWait):
			t.Fatal("Wake: a deadline earlier than the next one Due returned does not wake the loop")
		}
	}
	// c connects, so its join deadline (t0+5m) gives way to its idle one.
	e.transition("c", session.Change{Event: fsm.EventStart, At: t0})
	e.transition("c", session.Change{Event: fsm.EventJoin, At: t0})
	due, next, err = e.s.Due(e.ctx, t0.Add(30*time.Second), nil)
	require.NoError(t, err)
	assert.Empty(t, due)
	assert.True(t, next.After(t0.Add(30*time.Second)) && !next.After(t0.Add(time.Minute)),
		"next = %v: after now, at or before c's idle deadline", next)

	// Activity moves c's idle deadline; the old one fires nothing.
	_, err = e.s.Touch(e.ctx, "acme", "c", t0.Add(50*time.Second))
	require.NoError(t, err)
	due, _, err = e.s.Due(e.ctx, t0.Add(time.Minute), nil)
	require.NoError(t, err)
	assert.Empty(t, due, "c's deadline moved to 110 s")

	due, _, err = e.s.Due(e.ctx, t0.Add(5*time.Minute), make([]session.Due, 0, 1))
	require.NoError(t, err)
	require.Len(t, due, 1, "cap(buf) bounds a batch")
	rest, _, err := e.s.Due(e.ctx, t0.Add(5*time.Minute), nil)
	require.NoError(t, err)
	due = append(due, rest...)
	got := map[string]session.Timeout{}
	for _, d := range due {
		assert.NotContains(t, got, d.Record.ID, "%s reported twice for one deadline", d.Record.ID)
		got[d.Record.ID] = d.Timeout
		at, _ := d.Record.NextTimeout()
		assert.Equal(t, at, d.At, "%s: At is the record's NextTimeout", d.Record.ID)
	}
	assert.Equal(t, map[string]session.Timeout{"a": session.TimeoutJoin, "b": session.TimeoutJoin, "c": session.TimeoutIdle}, got)
	again, _, err := e.s.Due(e.ctx, t0.Add(5*time.Minute), nil)
	require.NoError(t, err)
	assert.Empty(t, again, "a deadline reported is not reported again at once")

	// Acting on a (closing it) arms its retention deadline.
	closed := e.close("a", t0.Add(6*time.Minute), session.ReasonJoin)
	e.close("b", t0.Add(6*time.Minute), session.ReasonJoin)
	e.close("c", t0.Add(6*time.Minute), session.ReasonIdle)
	due, _, err = e.s.Due(e.ctx, t0.Add(16*time.Minute-time.Nanosecond), nil)
	require.NoError(t, err)
	assert.Empty(t, due, "retention not over")
	due, _, err = e.s.Due(e.ctx, t0.Add(16*time.Minute), nil)
	require.NoError(t, err)
	i := slices.IndexFunc(due, func(d session.Due) bool { return d.Record.ID == "a" })
	require.GreaterOrEqual(t, i, 0, "a's retention ends: %v", due)
	assert.Equal(t, session.TimeoutRetention, due[i].Timeout)
	assert.Equal(t, t0.Add(16*time.Minute), due[i].At)
	assert.Equal(t, closed, due[i].Record, "the record when found due")
}

func testConcurrentCloses(t *testing.T, e *env) {
	const closers = 8
	e.insert(newRecord("a"))
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		successes int
	)
	for range closers {
		wg.Go(func() {
			// As the Manager does: retry a conflict, stop at a state error.
			for {
				_, _, err := e.s.Transition(e.ctx, "acme", "a", session.Change{Event: fsm.EventClose, At: t0, Reason: session.ReasonStop})
				switch code := sserrors.CodeOf(err); {
				case err == nil:
					mu.Lock()
					successes++
					mu.Unlock()
				case code == sserrors.CodeSessionStateClosing:
				default:
					if !assert.ErrorIs(t, err, session.ErrConflict) {
						return
					}
					continue
				}
				return
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, successes, "exactly one of %d concurrent closes", closers)
	evs := e.waitEvents("a", 2)
	assert.Equal(t, fsm.Closing, evs[1].To)
}

// testListClosed checks ClosedLister: the account's closed sessions, newest
// close first, none of another account's, none still open, none forgotten.
func testListClosed(t *testing.T, e *env) {
	l, ok := e.s.(session.ClosedLister)
	require.True(t, ok, "%T implements session.ClosedLister", e.s)
	ids := func(limit int) []string {
		t.Helper()
		recs, err := l.ListClosed(e.ctx, "acme", limit)
		require.NoError(t, err, "ListClosed(acme, %d)", limit)
		out := []string{}
		for _, r := range recs {
			assert.Equal(t, fsm.Closed, r.State, "%s is closed", r.ID)
			out = append(out, r.ID)
		}
		return out
	}
	assert.Equal(t, []string{}, ids(0), "nothing closed yet")
	for _, id := range []string{"a", "b", "c", "open"} {
		e.insert(newRecord(id))
	}
	other := newRecord("x")
	other.Account = "other"
	e.insert(other)
	// Closed in the order b, a, c, at times that disagree with that order:
	// the list follows the closes.
	e.close("b", t0.Add(3*time.Minute), session.ReasonStop)
	closedA := e.close("a", t0.Add(time.Minute), session.ReasonIdle)
	e.close("c", t0.Add(2*time.Minute), session.ReasonStop)
	_, _, err := e.s.Transition(e.ctx, "other", "x", session.Change{Event: fsm.EventClose, At: t0, Reason: session.ReasonStop})
	require.NoError(t, err)
	_, _, err = e.s.Transition(e.ctx, "other", "x", session.Change{Event: fsm.EventClosed, At: t0})
	require.NoError(t, err)

	assert.Equal(t, []string{"c", "a", "b"}, ids(0), "newest close first")
	assert.Equal(t, []string{"c", "a"}, ids(2), "at most limit")
	recs, err := l.ListClosed(e.ctx, "acme", 0)
	require.NoError(t, err)
	got, err := e.s.Get(e.ctx, "acme", "a")
	require.NoError(t, err)
	assert.Equal(t, got, recs[1], "the record as Get returns it")
	assert.Equal(t, session.ReasonIdle, recs[1].Reason)

	_, err = e.s.Delete(e.ctx, "acme", "a", closedA.Epoch, t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, []string{"c", "b"}, ids(0), "a forgotten session is not listed")
	assert.Equal(t, []string{"c", "b"}, ids(2), "the limit counts listed sessions only")
	e.insert(newRecord("a"))
	assert.Equal(t, []string{"c", "b"}, ids(0), "an id reused by an open session is not listed")
	none, err := l.ListClosed(e.ctx, "nobody", 0)
	require.NoError(t, err)
	assert.Empty(t, none)
}
