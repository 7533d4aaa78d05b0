package fsm_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// allStates is every State value a caller can hold, the invalid ones included.
var allStates = []fsm.State{fsm.Unknown, fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed, fsm.State(6), fsm.State(-1)}

// allEvents is every Event plus two outside the enum.
var allEvents = []fsm.Event{fsm.EventStart, fsm.EventJoin, fsm.EventClose, fsm.EventClosed, fsm.Event(0), fsm.Event(5)}

func TestEventString(t *testing.T) {
	tests := []struct {
		ev   fsm.Event
		want string
	}{
		{fsm.EventStart, "start"},
		{fsm.EventJoin, "join"},
		{fsm.EventClose, "close"},
		{fsm.EventClosed, "closed"},
		{fsm.Event(0), "Event(0)"},
		{fsm.Event(9), "Event(9)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.ev.String())
		})
	}
	assert.Equal(t, []fsm.Event{fsm.EventStart, fsm.EventJoin, fsm.EventClose, fsm.EventClosed}, fsm.Events())
}

// TestNext walks every (state, event) pair, invalid values included, and
// asserts the destination or the exact error code, written out by hand.
func TestNext(t *testing.T) {
	type result struct {
		to   fsm.State
		code sserrors.Code // 0: allowed
	}
	ok := func(to fsm.State) result { return result{to, 0} }
	no := func(code sserrors.Code) result { return result{code: code} }
	//                       start           join           close              closed             Event(0)    Event(5)
	want := map[fsm.State][]result{
		fsm.Unknown:    {no(500000), no(500000), no(500000), no(500000), no(500000), no(500000)},
		fsm.New:        {ok(fsm.Connecting), no(10001), ok(fsm.Closing), no(10001), no(10001), no(10001)},
		fsm.Connecting: {no(10002), ok(fsm.Connected), ok(fsm.Closing), no(10002), no(10002), no(10002)},
		fsm.Connected:  {no(10003), no(10003), ok(fsm.Closing), no(10003), no(10003), no(10003)},
		fsm.Closing:    {no(10004), no(10004), no(10004), ok(fsm.Closed), no(10004), no(10004)},
		fsm.Closed:     {no(10005), no(10005), no(10005), no(10005), no(10005), no(10005)},
		fsm.State(6):   {no(500000), no(500000), no(500000), no(500000), no(500000), no(500000)},
		fsm.State(-1):  {no(500000), no(500000), no(500000), no(500000), no(500000), no(500000)},
	}
	for _, from := range allStates {
		for i, ev := range allEvents {
			t.Run(fmt.Sprintf("%d/%s", int(from), ev), func(t *testing.T) {
				w := want[from][i]
				to, err := fsm.Next(from, ev)
				if w.code == 0 {
					require.NoError(t, err)
					assert.Equal(t, w.to, to)
					return
				}
				require.Error(t, err)
				assert.Equal(t, w.code, sserrors.CodeOf(err))
				assert.Equal(t, from, to, "a refused event leaves the state")
			})
		}
	}
}

// TestNextAgreesWithFire proves the compiled table and the running machine
// (looplab underneath) agree on every (state, event) pair.
func TestNextAgreesWithFire(t *testing.T) {
	for _, from := range allStates {
		for _, ev := range allEvents {
			t.Run(fmt.Sprintf("%d/%s", int(from), ev), func(t *testing.T) {
				m := fsm.NewMachine(from)
				start := m.State() // invalid states become Unknown
				wantTo, wantErr := fsm.Next(start, ev)
				gotFrom, gotTo, gotErr := m.Fire(context.Background(), ev)
				assert.Equal(t, start, gotFrom)
				assert.Equal(t, sserrors.CodeOf(wantErr), sserrors.CodeOf(gotErr))
				if wantErr != nil {
					assert.Same(t, wantErr, gotErr, "the same shared error")
					assert.Equal(t, start, gotTo)
					assert.Equal(t, start, m.State())
					return
				}
				assert.Equal(t, wantTo, gotTo)
				assert.Equal(t, wantTo, m.State())
			})
		}
	}
}
