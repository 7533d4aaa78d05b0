package fsm_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

func TestStateString(t *testing.T) {
	tests := []struct {
		state fsm.State
		want  string
	}{
		{fsm.Unknown, "unknown"},
		{fsm.New, "new"},
		{fsm.Connecting, "connecting"},
		{fsm.Connected, "connected"},
		{fsm.Closing, "closing"},
		{fsm.Closed, "closed"},
		{fsm.State(6), "unknown"},
		{fsm.State(-1), "unknown"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d", int(tt.state)), func(t *testing.T) {
			assert.Equal(t, tt.want, tt.state.String())
		})
	}
}

func TestParseState(t *testing.T) {
	tests := []struct {
		name string
		want fsm.State
		ok   bool
	}{
		{"new", fsm.New, true},
		{"connecting", fsm.Connecting, true},
		{"connected", fsm.Connected, true},
		{"closing", fsm.Closing, true},
		{"closed", fsm.Closed, true},
		{"CONNECTED", fsm.Connected, true},
		{"Closed", fsm.Closed, true},
		{"unknown", fsm.Unknown, false},
		{"", fsm.Unknown, false},
		{" new", fsm.Unknown, false},
		{"close", fsm.Unknown, false},
		{"closedd", fsm.Unknown, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fsm.ParseState(tt.name)
			assert.Equal(t, tt.want, got)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, sserrors.CodeInvalidParameter, sserrors.CodeOf(err))
		})
	}
}

// TestStateRoundTrip checks String and ParseState are inverse on every
// lifecycle state, and that States lists them in lifecycle order.
func TestStateRoundTrip(t *testing.T) {
	states := fsm.States()
	require.Equal(t, []fsm.State{fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed}, states)
	for i, s := range states {
		t.Run(s.String(), func(t *testing.T) {
			got, err := fsm.ParseState(s.String())
			require.NoError(t, err)
			assert.Equal(t, s, got)
			assert.Equal(t, i, s.Index())
		})
	}
	states[0] = fsm.Closed
	assert.Equal(t, fsm.New, fsm.States()[0], "States must return a fresh slice")
}

func TestStateIndexOpenError(t *testing.T) {
	tests := []struct {
		state fsm.State
		index int
		open  bool
		code  sserrors.Code
	}{
		{fsm.Unknown, -1, false, 500000},
		{fsm.New, 0, true, 10001},
		{fsm.Connecting, 1, true, 10002},
		{fsm.Connected, 2, true, 10003},
		{fsm.Closing, 3, false, 10004},
		{fsm.Closed, 4, false, 10005},
		{fsm.State(42), -1, false, 500000},
	}
	for _, tt := range tests {
		t.Run(tt.state.String(), func(t *testing.T) {
			assert.Equal(t, tt.index, tt.state.Index())
			assert.Equal(t, tt.open, tt.state.Open())
			err := fsm.StateError(tt.state)
			require.NotNil(t, err)
			assert.Equal(t, tt.code, err.Code)
			if tt.index >= 0 {
				assert.Equal(t, 400, err.Status)
				assert.Equal(t, "Session state wrong: "+tt.state.String(), err.Message)
				assert.Same(t, sserrors.SessionState(tt.state.String()), err, "must be the shared error")
			}
		})
	}
}
