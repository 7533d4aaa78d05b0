package fsm_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	looplab "github.com/looplab/fsm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

func TestMachineLifecycle(t *testing.T) {
	m := fsm.NewMachine(fsm.New)
	require.Equal(t, fsm.New, m.State())
	steps := []struct {
		ev       fsm.Event
		from, to fsm.State
	}{
		{fsm.EventStart, fsm.New, fsm.Connecting},
		{fsm.EventJoin, fsm.Connecting, fsm.Connected},
		{fsm.EventClose, fsm.Connected, fsm.Closing},
		{fsm.EventClosed, fsm.Closing, fsm.Closed},
	}
	for _, st := range steps {
		from, to, err := m.Fire(t.Context(), st.ev)
		require.NoError(t, err, "Fire(%s)", st.ev)
		assert.Equal(t, st.from, from)
		assert.Equal(t, st.to, to)
		assert.Equal(t, st.to, m.State())
	}
}

func TestNewMachineInvalidInitial(t *testing.T) {
	for _, s := range []fsm.State{fsm.Unknown, fsm.State(6), fsm.State(-3)} {
		t.Run(s.String(), func(t *testing.T) {
			m := fsm.NewMachine(s)
			assert.Equal(t, fsm.Unknown, m.State())
			for _, ev := range fsm.Events() {
				from, to, err := m.Fire(t.Context(), ev)
				assert.Equal(t, sserrors.CodeInternalServerError, sserrors.CodeOf(err))
				assert.Equal(t, fsm.Unknown, from)
				assert.Equal(t, fsm.Unknown, to)
				assert.Equal(t, fsm.Unknown, m.State())
			}
		})
	}
}

// TestFireIllegalChangesNothing fires every event that a state refuses and
// checks the machine still runs the rest of its life normally afterwards.
func TestFireIllegalChangesNothing(t *testing.T) {
	for _, s := range fsm.States() {
		for _, ev := range allEvents {
			if _, err := fsm.Next(s, ev); err == nil {
				continue
			}
			t.Run(s.String()+"/"+ev.String(), func(t *testing.T) {
				m := fsm.NewMachine(s)
				for range 3 { // refusing repeatedly must not wear anything out
					from, to, err := m.Fire(t.Context(), ev)
					require.Error(t, err)
					assert.Equal(t, sserrors.Code(10001+s.Index()), sserrors.CodeOf(err))
					assert.Equal(t, s, from)
					assert.Equal(t, s, to)
					assert.Equal(t, s, m.State())
				}
				assertCanFinish(t, m)
			})
		}
	}
}

// assertCanFinish drives m from its current state to Closed and fails if any
// legal event is refused.
func assertCanFinish(t *testing.T, m *fsm.Machine) {
	t.Helper()
	path := map[fsm.State]fsm.Event{
		fsm.New: fsm.EventStart, fsm.Connecting: fsm.EventJoin,
		fsm.Connected: fsm.EventClose, fsm.Closing: fsm.EventClosed,
	}
	for m.State() != fsm.Closed {
		s := m.State()
		from, to, err := m.Fire(context.Background(), path[s])
		require.NoError(t, err, "Fire(%s) in %s", path[s], s)
		require.Equal(t, s, from)
		require.Greater(t, to, from)
	}
}

func TestFireDoneContext(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	tests := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"canceled", cancelled, context.Canceled},
		{"deadline", expired, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fsm.NewMachine(fsm.New)
			from, to, err := m.Fire(tt.ctx, fsm.EventStart)
			assert.Equal(t, tt.want, err)
			assert.Equal(t, fsm.New, from)
			assert.Equal(t, fsm.New, to)
			assert.Equal(t, fsm.New, m.State())
			assertCanFinish(t, m)
		})
	}
}

func TestFireNilContext(t *testing.T) {
	m := fsm.NewMachine(fsm.New)
	// A nil context is bad input: it must not panic.
	_, to, err := m.Fire(nil, fsm.EventStart)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connecting, to)
}

// cancelledMidway is a context that is not done when first asked and done from
// then on: it is cancelled just after Fire checked it, while the transition is
// under way. Its Done channel is already closed, so any context derived from
// it (as looplab derives one inside Event) is cancelled at once.
type cancelledMidway struct {
	context.Context
	asked atomic.Int32
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *cancelledMidway) Done() <-chan struct{} { return closedChan }

func (c *cancelledMidway) Err() error {
	if c.asked.Add(1) == 1 {
		return nil
	}
	return context.Canceled
}

// TestLooplabIssue115 shows the trap the Machine guards against exists in the
// looplab version we run: an Event whose context is cancelled before the
// transition completes leaves a raw looplab machine refusing every later event.
// If this test fails, looplab fixed #115 and the workaround may be revisited.
func TestLooplabIssue115(t *testing.T) {
	raw := looplab.NewFSM("new", looplab.Events{
		{Name: "start", Src: []string{"new"}, Dst: "connecting"},
		{Name: "join", Src: []string{"connecting"}, Dst: "connected"},
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := raw.Event(ctx, "start")
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "new", raw.Current())

	err = raw.Event(context.Background(), "start")
	var inTransition looplab.InTransitionError
	assert.ErrorAs(t, err, &inTransition, "looplab is wedged")
}

// TestFireCancelledMidTransition is the regression test for looplab/fsm #115:
// a context cancelled while a transition is under way must not wedge the
// machine.
func TestFireCancelledMidTransition(t *testing.T) {
	for _, ev := range []fsm.Event{fsm.EventStart, fsm.EventClose} {
		t.Run(ev.String(), func(t *testing.T) {
			m := fsm.NewMachine(fsm.New)
			ctx := &cancelledMidway{Context: context.Background()}
			want, _ := fsm.Next(fsm.New, ev)
			from, to, err := m.Fire(ctx, ev)
			// The cancellation came after Fire's check: the transition completes.
			require.NoError(t, err)
			assert.Equal(t, fsm.New, from)
			assert.Equal(t, want, to)
			assert.Equal(t, want, m.State())
			assertCanFinish(t, m)
		})
	}
}

// TestFireConcurrentSameEvent: of many goroutines closing one machine at
// once, exactly one succeeds and every other sees the closing error.
func TestFireConcurrentSameEvent(t *testing.T) {
	const goroutines = 200
	m := fsm.NewMachine(fsm.Connected)
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		won     atomic.Int32
		refused atomic.Int32
	)
	for range goroutines {
		wg.Go(func() {
			<-start
			from, to, err := m.Fire(context.Background(), fsm.EventClose)
			switch {
			case err == nil && from == fsm.Connected && to == fsm.Closing:
				won.Add(1)
			case sserrors.CodeOf(err) == sserrors.CodeSessionStateClosing && from == fsm.Closing && to == fsm.Closing:
				refused.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int32(1), won.Load())
	assert.Equal(t, int32(goroutines-1), refused.Load())
	assert.Equal(t, fsm.Closing, m.State())
}

// TestFireConcurrentRandom has many goroutines fire every event at one machine
// until it is closed, while others read State: each transition is won by
// exactly one Fire, the winners form a legal path from new to closed, and
// State is never seen going backwards.
func TestFireConcurrentRandom(t *testing.T) {
	for round := range 20 {
		m := fsm.NewMachine(fsm.New)
		const firers, readers = 16, 4
		type step struct{ from, to fsm.State }
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			steps []step
			start = make(chan struct{})
		)
		for g := range firers {
			wg.Go(func() {
				<-start
				events := fsm.Events()
				for i := g; m.State() != fsm.Closed; i++ {
					ev := events[(i*7+round)%len(events)]
					from, to, err := m.Fire(context.Background(), ev)
					if err != nil {
						if want := fsm.StateError(from); !assert.Same(t, want, err) {
							return
						}
						continue
					}
					mu.Lock()
					steps = append(steps, step{from, to})
					mu.Unlock()
				}
			})
		}
		for range readers {
			wg.Go(func() {
				<-start
				last := fsm.New
				for last != fsm.Closed {
					s := m.State()
					if !assert.GreaterOrEqual(t, s, last, "State went backwards") {
						return
					}
					last = s
				}
			})
		}
		close(start)
		wg.Wait()

		slices.SortFunc(steps, func(a, b step) int { return int(a.from - b.from) })
		require.NotEmpty(t, steps)
		require.Equal(t, fsm.New, steps[0].from)
		for i, st := range steps {
			if i > 0 {
				require.Equal(t, steps[i-1].to, st.from, "steps %v: not one chain (a transition won twice?)", steps)
			}
			to, err := fsm.Next(st.from, eventBetween(t, st.from, st.to))
			require.NoError(t, err)
			require.Equal(t, st.to, to)
		}
		require.Equal(t, fsm.Closed, steps[len(steps)-1].to)
	}
}

// eventBetween returns the event that leads from from to to.
func eventBetween(t *testing.T, from, to fsm.State) fsm.Event {
	t.Helper()
	for _, ev := range fsm.Events() {
		if got, err := fsm.Next(from, ev); err == nil && got == to {
			return ev
		}
	}
	t.Fatalf("no event leads from %s to %s", from, to)
	return 0
}
