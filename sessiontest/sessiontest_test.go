package sessiontest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/sessiontest"
)

// A Clock is the Manager's clock and the server's.
var (
	_ session.Clock  = (*sessiontest.Clock)(nil)
	_ realtime.Clock = (*sessiontest.Clock)(nil)
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestClockTimers(t *testing.T) {
	c := sessiontest.NewClock(t0)
	a := c.NewTimer(time.Minute)
	b := c.NewTimer(2 * time.Minute)
	assert.Equal(t, 2, c.Pending())

	c.Advance(59 * time.Second)
	assertNoFire(t, a, "a before its deadline")
	c.Advance(time.Second)
	assert.Equal(t, t0.Add(time.Minute), <-a.C(), "a fires with the clock's time")
	assertNoFire(t, b, "b before its deadline")
	assert.Equal(t, 1, c.Pending())

	assert.True(t, b.Stop(), "b was armed")
	assert.False(t, b.Stop(), "b stopped twice")
	c.Advance(time.Hour)
	assertNoFire(t, b, "a stopped timer")

	// Reset drops a value not yet received, as a time.Timer does since Go 1.23.
	c.Advance(0)
	a.Reset(time.Second)
	c.Advance(time.Second)
	assert.False(t, a.Reset(time.Minute), "a had fired")
	assertNoFire(t, a, "after Reset, the stale value is gone")
	c.Advance(time.Minute)
	assert.Equal(t, c.Now(), <-a.C())

	z := c.NewTimer(0)
	assert.Equal(t, c.Now(), <-z.C(), "a zero duration fires at once")
	c.Advance(-time.Hour)
	assert.Equal(t, t0.Add(time.Hour+time.Minute+time.Second+time.Minute), c.Now(), "the clock never goes back")
}

func TestClockAfterFunc(t *testing.T) {
	c := sessiontest.NewClock(t0)
	var ran []string
	c.AfterFunc(2*time.Second, func() { ran = append(ran, "two") })
	c.AfterFunc(time.Second, func() {
		ran = append(ran, "one")
		c.AfterFunc(0, func() { ran = append(ran, "set by one") }) // the clock is usable from f
	})
	stop := c.AfterFunc(time.Second, func() { ran = append(ran, "stopped") })
	assert.True(t, stop(), "stop prevented the call")
	assert.False(t, stop(), "stop twice")
	assert.Equal(t, 2, c.Pending())

	c.Advance(3 * time.Second)
	assert.Equal(t, []string{"one", "two"}, ran, "in deadline order")
	c.Advance(0)
	assert.Equal(t, []string{"one", "two", "set by one"}, ran)
	assert.Equal(t, 0, c.Pending())
}

func assertNoFire(t *testing.T, tm session.Timer, what string) {
	t.Helper()
	select {
	case v := <-tm.C():
		t.Errorf("%s: fired at %v", what, v)
	default:
	}
}

// fakeT records what an assertion reports.
type fakeT struct {
	testing.TB
	errors []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func TestAssertStatesSaysWhatHappened(t *testing.T) {
	rec := sessiontest.NewRecorder()
	rec.Record(session.Event{SessionID: "s1", From: fsm.Unknown, To: fsm.New})
	rec.Record(session.Event{SessionID: "other", From: fsm.Unknown, To: fsm.New})
	rec.Record(session.Event{SessionID: "s1", From: fsm.New, To: fsm.Closing, Reason: session.ReasonJoin})
	rec.Record(session.Event{SessionID: "s1", From: fsm.Closing, To: fsm.Closed, Reason: session.ReasonJoin})

	ok := &fakeT{}
	assert.True(t, rec.AssertStates(ok, "s1", fsm.New, fsm.Closing, fsm.Closed))
	assert.Empty(t, ok.errors)

	bad := &fakeT{}
	assert.False(t, rec.AssertStates(bad, "s1", fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed))
	require.Len(t, bad.errors, 1)
	hash := session.ShortHash("s1")
	assert.Equal(t, "session #"+hash+": states new → closing → closed,\n"+
		"want new → connecting → connected → closing → closed\n"+
		"events of the session: unknown → new; new → closing (join); closing → closed (join)", bad.errors[0])
	assert.NotContains(t, bad.errors[0], "s1", "the session id stays out of the message")
}

func TestAssertCalls(t *testing.T) {
	rec := sessiontest.NewRecorder()
	rec.Call("bill", "s1", "1m30s")
	rec.Call("notify", "s1", "")
	h := session.ShortHash("s1")
	ok := &fakeT{}
	assert.True(t, rec.AssertCalls(ok, "bill(#"+h+") 1m30s", "notify(#"+h+")"))
	bad := &fakeT{}
	assert.False(t, rec.AssertCalls(bad, "bill(#"+h+") 2m0s"))
	require.Len(t, bad.errors, 1)
	assert.Equal(t, "hook calls:\n  bill(#"+h+") 1m30s\n  notify(#"+h+")\nwant:\n  bill(#"+h+") 2m0s", bad.errors[0])
}

func TestWaitStateTimesOutWithTheStatesSeen(t *testing.T) {
	rec := sessiontest.NewRecorder()
	rec.Record(session.Event{SessionID: "s1", From: fsm.Unknown, To: fsm.New})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := rec.WaitState(ctx, "s1", fsm.Closed)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, "sessiontest: session #"+session.ShortHash("s1")+" never entered closed (states new): context deadline exceeded", err.Error())

	err = rec.WaitCalls(ctx, 1)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "0 hook calls, want 1 (none)")
}

func TestWaitStateWakesOnRecord(t *testing.T) {
	rec := sessiontest.NewRecorder()
	done := make(chan session.Event)
	go func() {
		e, err := rec.WaitState(context.Background(), "s1", fsm.Closed)
		assert.NoError(t, err)
		done <- e
	}()
	rec.Record(session.Event{SessionID: "s1", From: fsm.Unknown, To: fsm.New})
	rec.Record(session.Event{SessionID: "s1", From: fsm.Closing, To: fsm.Closed, Reason: session.ReasonIdle})
	assert.Equal(t, session.ReasonIdle, (<-done).Reason)
}

// TestTapSettle: a slow subscriber has seen every event once Settle returns.
func TestTapSettle(t *testing.T) {
	ctx := context.Background()
	tap := sessiontest.NewTap()
	lim := limits.NewMemory(limits.MemoryConfig{})
	defer lim.Close()
	m, err := session.NewManager(session.Config{
		Limiter: lim, Avatars: avatars,
		Hooks: session.Hooks{OnTransition: tap.OnTransition},
	})
	require.NoError(t, err)
	defer m.Close(ctx)

	var mu sync.Mutex
	var seen []string
	release := make(chan struct{})
	cancel := tap.Subscribe(m, func(e session.Event) {
		<-release // a subscriber that is behind
		mu.Lock()
		seen = append(seen, e.To.String())
		mu.Unlock()
	})
	defer cancel()
	other := tap.Subscribe(m, func(session.Event) {})
	defer other()

	s, err := m.Create(ctx, acme, session.CreateOptions{})
	require.NoError(t, err)
	_, err = m.Stop(ctx, "acme", s.ID)
	require.NoError(t, err)

	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	err = tap.Settle(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "subscription 1 has seen 0 of 3 events")
	assert.NotContains(t, err.Error(), "subscription 2", "the other one is not behind")

	close(release)
	require.NoError(t, tap.Settle(ctx))
	mu.Lock()
	assert.Equal(t, "new closing closed", strings.Join(seen, " "))
	mu.Unlock()
}

func TestChain(t *testing.T) {
	var got []string
	hook := sessiontest.Chain(
		func(e session.Event) { got = append(got, "a "+e.To.String()) },
		nil,
		func(e session.Event) { got = append(got, "b "+e.To.String()) },
	)
	hook(session.Event{To: fsm.New})
	assert.Equal(t, []string{"a new", "b new"}, got)
}
