package fsm

import (
	"context"
	"errors"
	"fmt"
	"testing"

	looplab "github.com/looplab/fsm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
)

// TestCompile checks the lifecycle definition compiles and that compile
// refuses definitions that would make Next and looplab disagree.
func TestCompile(t *testing.T) {
	_, err := compile(definition)
	require.NoError(t, err)

	bad := []struct {
		name string
		defs looplab.Events
	}{
		{"unknown event", looplab.Events{{Name: "begin", Src: []string{"new"}, Dst: "connecting"}}},
		{"unknown source", looplab.Events{{Name: "start", Src: []string{"neu"}, Dst: "connecting"}}},
		{"unknown destination", looplab.Events{{Name: "start", Src: []string{"new"}, Dst: "Connecting"}}},
		{"no source", looplab.Events{{Name: "start", Dst: "connecting"}}},
		{"self transition", looplab.Events{{Name: "close", Src: []string{"closing"}, Dst: "closing"}}},
		{"backwards", looplab.Events{{Name: "start", Src: []string{"connected"}, Dst: "connecting"}}},
		{"duplicate", looplab.Events{
			{Name: "close", Src: []string{"new"}, Dst: "closing"},
			{Name: "close", Src: []string{"new"}, Dst: "closed"},
		}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compile(tt.defs)
			assert.Error(t, err)
			assert.Panics(t, func() { mustCompile(tt.defs) })
		})
	}
}

// TestDefinitionAgreesWithLooplab asks a raw looplab machine built from the
// definition about every (state, event) pair and checks Next says the same.
func TestDefinitionAgreesWithLooplab(t *testing.T) {
	for _, from := range []State{New, Connecting, Connected, Closing, Closed} {
		for ev := EventStart; ev <= EventClosed; ev++ {
			t.Run(from.String()+"/"+ev.String(), func(t *testing.T) {
				raw := looplab.NewFSM(from.String(), definition, nil)
				can := raw.Can(ev.String())
				to, err := Next(from, ev)
				require.Equal(t, can, err == nil)
				lerr := raw.Event(context.Background(), ev.String())
				if can {
					require.NoError(t, lerr)
					assert.Equal(t, to.String(), raw.Current())
					return
				}
				var invalid looplab.InvalidEventError
				assert.ErrorAs(t, lerr, &invalid)
			})
		}
	}
}

// TestFireFollowsLooplab checks that after each Fire the mirrored state is the
// looplab core's state.
func TestFireFollowsLooplab(t *testing.T) {
	m := NewMachine(New)
	for _, ev := range []Event{EventStart, EventJoin, EventClose, EventClosed} {
		_, to, err := m.Fire(context.Background(), ev)
		require.NoError(t, err)
		assert.Equal(t, m.core.Current(), to.String())
		assert.Equal(t, to, m.State())
	}
}

// TestFireHealsWedgedCore wedges the looplab core the way looplab/fsm #115
// does and checks the Machine recovers instead of refusing forever.
func TestFireHealsWedgedCore(t *testing.T) {
	m := NewMachine(New)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, m.core.Event(ctx, EventStart.String()), context.Canceled)
	require.True(t, isWedged(m.core.Event(context.Background(), EventStart.String())), "the core must be wedged for this test")

	from, to, err := m.Fire(context.Background(), EventStart)
	require.NoError(t, err)
	assert.Equal(t, New, from)
	assert.Equal(t, Connecting, to)
	assert.Equal(t, "connecting", m.core.Current())
}

// TestTranslate maps every looplab error value to ours. looplab's errors are
// value types: a pointer target in errors.As would silently never match.
func TestTranslate(t *testing.T) {
	wrapped := func(err error) error { return fmt.Errorf("wrapped: %w", err) }
	tests := []struct {
		name string
		err  error
		want sserrors.Code // 0: nil
		is   error
	}{
		{"nil", nil, 0, nil},
		{"self transition", looplab.NoTransitionError{}, 0, nil},
		{"self transition wrapped", wrapped(looplab.NoTransitionError{}), 0, nil},
		{"invalid event", looplab.InvalidEventError{Event: "start", State: "connected"}, 10003, nil},
		{"unknown event", looplab.UnknownEventError{Event: "begin"}, 10003, nil},
		{"context canceled", context.Canceled, 500000, context.Canceled},
		{"deadline", context.DeadlineExceeded, 500000, context.DeadlineExceeded},
		{"canceled with context", looplab.CanceledError{Err: context.Canceled}, 500000, context.Canceled},
		{"no transition with context", looplab.NoTransitionError{Err: context.DeadlineExceeded}, 500000, context.DeadlineExceeded},
		{"canceled by callback", looplab.CanceledError{}, 500000, nil},
		{"in transition", looplab.InTransitionError{Event: "start"}, 500000, nil},
		{"async", looplab.AsyncError{}, 500000, nil},
		{"internal", looplab.InternalError{}, 500000, nil},
		{"other", errors.New("boom"), 500000, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate(Connected, tt.err)
			if tt.is != nil {
				assert.Equal(t, tt.is, got, "context errors come back as themselves")
				return
			}
			assert.Equal(t, tt.want, sserrors.CodeOf(got))
			assert.False(t, leaksLooplab(got), "a looplab error in the chain of %v", got)
		})
	}
}

// TestFireAddsNoAllocations pins that a Machine costs one allocation (its own
// struct) on top of looplab for a whole lifecycle: no per-transition
// allocation of ours.
func TestFireAddsNoAllocations(t *testing.T) {
	ctx := context.Background()
	raw := testing.AllocsPerRun(50, func() {
		f := looplab.NewFSM("new", definition, nil)
		for _, ev := range []string{"start", "join", "close", "closed"} {
			if err := f.Event(ctx, ev); err != nil {
				panic(err)
			}
		}
	})
	ours := testing.AllocsPerRun(50, func() {
		m := NewMachine(New)
		for _, ev := range []Event{EventStart, EventJoin, EventClose, EventClosed} {
			if _, _, err := m.Fire(ctx, ev); err != nil {
				panic(err)
			}
		}
	})
	assert.Equal(t, raw+1, ours, "looplab %v allocs, ours %v", raw, ours)
}

// leaksLooplab reports whether any looplab error type is in err's chain.
func leaksLooplab(err error) bool {
	var (
		e1 looplab.InvalidEventError
		e2 looplab.UnknownEventError
		e3 looplab.InTransitionError
		e4 looplab.NotInTransitionError
		e5 looplab.NoTransitionError
		e6 looplab.CanceledError
		e7 looplab.AsyncError
		e8 looplab.InternalError
	)
	return errors.As(err, &e1) || errors.As(err, &e2) || errors.As(err, &e3) || errors.As(err, &e4) ||
		errors.As(err, &e5) || errors.As(err, &e6) || errors.As(err, &e7) || errors.As(err, &e8)
}

func TestLeaksLooplab(t *testing.T) {
	assert.True(t, leaksLooplab(fmt.Errorf("x: %w", looplab.InternalError{})))
	assert.False(t, leaksLooplab(sserrors.ErrInternalServerError))
}
