package session

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

func TestGuardObserveIsMonotonic(t *testing.T) {
	tests := []struct {
		name     string
		observed []fsm.State
		want     fsm.State
	}{
		{"nothing", nil, fsm.Unknown},
		{"in order", []fsm.State{fsm.New, fsm.Connecting, fsm.Connected}, fsm.Connected},
		{"late older event", []fsm.State{fsm.New, fsm.Connected, fsm.Connecting}, fsm.Connected},
		{"closed wins", []fsm.State{fsm.Closed, fsm.New, fsm.Connected}, fsm.Closed},
		{"unknown ignored", []fsm.State{fsm.Connecting, fsm.Unknown}, fsm.Connecting},
		{"out of range ignored", []fsm.State{fsm.New, fsm.State(42), fsm.State(-3)}, fsm.New},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g Guard
			for _, s := range tt.observed {
				g.Observe(s)
			}
			assert.Equal(t, tt.want, g.State())
		})
	}
}

// TestGuardCheckMatchesServer: for every state and command the guard
// answers exactly what the Manager answers (see
// TestCommandPolicyExhaustive), and 10006 before it knows anything.
func TestGuardCheckMatchesServer(t *testing.T) {
	var zero Guard
	assert.Equal(t, sserrors.ErrSessionNotFound, zero.Check(fsm.CmdStart))
	want := map[fsm.State]map[fsm.Command]sserrors.Code{}
	for _, s := range fsm.States() {
		want[s] = map[fsm.Command]sserrors.Code{}
		for _, c := range fsm.Commands() {
			want[s][c] = sserrors.Code(10001 + s.Index())
		}
	}
	want[fsm.New][fsm.CmdStart] = 0
	want[fsm.New][fsm.CmdICE] = 0
	want[fsm.New][fsm.CmdStop] = 0
	want[fsm.Connecting][fsm.CmdICE] = 0
	want[fsm.Connecting][fsm.CmdStop] = 0
	for _, c := range []fsm.Command{fsm.CmdTask, fsm.CmdInterrupt, fsm.CmdKeepAlive, fsm.CmdStartListening, fsm.CmdStopListening, fsm.CmdStop} {
		want[fsm.Connected][c] = 0
	}
	for _, s := range fsm.States() {
		var g Guard
		g.Observe(s)
		for _, c := range fsm.Commands() {
			t.Run(c.String()+"/"+s.String(), func(t *testing.T) {
				assert.Equal(t, want[s][c], codeOf(g.Check(c)))
			})
		}
	}
}

func TestGuardAllocatesNothing(t *testing.T) {
	var g Guard
	g.Observe(fsm.Connecting)
	allocs := testing.AllocsPerRun(1000, func() {
		_ = g.Check(fsm.CmdTask)
		_ = g.Check(fsm.CmdICE)
		g.Observe(fsm.Connecting)
		_ = g.State()
	})
	assert.Zero(t, allocs)
}

func TestGuardConcurrentObservers(t *testing.T) {
	var g Guard
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			for j := range 1000 {
				g.Observe(fsm.State(1 + (i+j)%5))
				_ = g.Check(fsm.CmdTask)
				assert.NotEqual(t, fsm.Unknown, g.State())
			}
		})
	}
	wg.Wait()
	assert.Equal(t, fsm.Closed, g.State())
}
