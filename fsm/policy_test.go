package fsm_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// TestAllow walks every (command, state) pair, invalid values included, and
// asserts the exact code (0 when allowed), written out by hand from the
// command policy of the wire contract.
func TestAllow(t *testing.T) {
	// columns: Unknown, New, Connecting, Connected, Closing, Closed, State(6), State(-1)
	want := []struct {
		cmd   fsm.Command
		codes [8]sserrors.Code
	}{
		{fsm.CmdStart, [8]sserrors.Code{500000, 0, 10002, 10003, 10004, 10005, 500000, 500000}},
		{fsm.CmdICE, [8]sserrors.Code{500000, 0, 0, 10003, 10004, 10005, 500000, 500000}},
		{fsm.CmdTask, [8]sserrors.Code{500000, 10001, 10002, 0, 10004, 10005, 500000, 500000}},
		{fsm.CmdInterrupt, [8]sserrors.Code{500000, 10001, 10002, 0, 10004, 10005, 500000, 500000}},
		{fsm.CmdKeepAlive, [8]sserrors.Code{500000, 10001, 10002, 0, 10004, 10005, 500000, 500000}},
		{fsm.CmdStartListening, [8]sserrors.Code{500000, 10001, 10002, 0, 10004, 10005, 500000, 500000}},
		{fsm.CmdStopListening, [8]sserrors.Code{500000, 10001, 10002, 0, 10004, 10005, 500000, 500000}},
		{fsm.CmdStop, [8]sserrors.Code{500000, 0, 0, 0, 10004, 10005, 500000, 500000}},
		{fsm.Command(0), [8]sserrors.Code{500000, 10001, 10002, 10003, 10004, 10005, 500000, 500000}},
		{fsm.Command(9), [8]sserrors.Code{500000, 10001, 10002, 10003, 10004, 10005, 500000, 500000}},
	}
	require.Len(t, allStates, 8)
	for _, row := range want {
		for i, s := range allStates {
			t.Run(row.cmd.String()+"/"+s.String(), func(t *testing.T) {
				err := fsm.Allow(s, row.cmd)
				assert.Equal(t, row.codes[i], sserrors.CodeOf(err))
				if err != nil {
					assert.Same(t, fsm.StateError(s), err, "the shared error, not a copy")
				}
			})
		}
	}
}

func TestCommandNames(t *testing.T) {
	names := []string{"start", "ice", "task", "interrupt", "keep_alive", "start_listening", "stop_listening", "stop"}
	cmds := fsm.Commands()
	require.Len(t, cmds, len(names))
	for i, c := range cmds {
		t.Run(names[i], func(t *testing.T) {
			assert.Equal(t, names[i], c.String())
			got, ok := fsm.ParseCommand(names[i])
			require.True(t, ok)
			assert.Equal(t, c, got)
		})
	}
	got, ok := fsm.ParseCommand("KEEP_ALIVE")
	assert.True(t, ok)
	assert.Equal(t, fsm.CmdKeepAlive, got)
	for _, bad := range []string{"", "streaming.task", "keepalive", "stop "} {
		_, ok := fsm.ParseCommand(bad)
		assert.False(t, ok, "ParseCommand(%q)", bad)
	}
	assert.Equal(t, "Command(0)", fsm.Command(0).String())
	assert.Equal(t, "Command(12)", fsm.Command(12).String())
}

// TestNoAllocs pins the zero-allocation contract of the hot checks.
func TestNoAllocs(t *testing.T) {
	var sink error
	var state fsm.State
	m := fsm.NewMachine(fsm.Closed)
	checks := map[string]func(){
		"Allow/allowed":  func() { sink = fsm.Allow(fsm.Connected, fsm.CmdTask) },
		"Allow/refused":  func() { sink = fsm.Allow(fsm.Connecting, fsm.CmdTask) },
		"Allow/unknown":  func() { sink = fsm.Allow(fsm.Unknown, fsm.CmdTask) },
		"Next/allowed":   func() { state, sink = fsm.Next(fsm.New, fsm.EventStart) },
		"Next/refused":   func() { state, sink = fsm.Next(fsm.Closed, fsm.EventStart) },
		"StateError":     func() { sink = fsm.StateError(fsm.Closing) },
		"Machine.State":  func() { state = m.State() },
		"Fire/refused":   func() { _, _, sink = m.Fire(t.Context(), fsm.EventStart) },
		"Mermaid/cached": func() { _ = fsm.Mermaid() },
	}
	for name, f := range checks {
		t.Run(name, func(t *testing.T) {
			assert.Zero(t, testing.AllocsPerRun(100, f))
		})
	}
	_, _ = sink, state
}
