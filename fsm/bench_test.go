package fsm_test

import (
	"context"
	"testing"

	looplab "github.com/looplab/fsm"

	"github.com/streamsession/streamsession/fsm"
)

var (
	sinkErr   error
	sinkState fsm.State
	sinkM     *fsm.Machine
	sinkF     *looplab.FSM
)

// rawEvents is the same lifecycle written directly for looplab: the baseline.
var rawEvents = looplab.Events{
	{Name: "start", Src: []string{"new"}, Dst: "connecting"},
	{Name: "join", Src: []string{"connecting"}, Dst: "connected"},
	{Name: "close", Src: []string{"new", "connecting", "connected"}, Dst: "closing"},
	{Name: "closed", Src: []string{"closing"}, Dst: "closed"},
}

// BenchmarkMachineLifecycle is NewMachine and the four transitions; compare
// with BenchmarkLooplabLifecycle from the same run.
func BenchmarkMachineLifecycle(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m := fsm.NewMachine(fsm.New)
		for _, ev := range [...]fsm.Event{fsm.EventStart, fsm.EventJoin, fsm.EventClose, fsm.EventClosed} {
			if _, _, err := m.Fire(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		sinkM = m
	}
}

// BenchmarkLooplabLifecycle is a raw looplab machine through the same five
// states: the baseline for BenchmarkMachineLifecycle.
func BenchmarkLooplabLifecycle(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		f := looplab.NewFSM("new", rawEvents, nil)
		for _, ev := range [...]string{"start", "join", "close", "closed"} {
			if err := f.Event(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		sinkF = f
	}
}

// BenchmarkNewMachine measures the bytes one machine keeps (B/op).
func BenchmarkNewMachine(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkM = fsm.NewMachine(fsm.New)
	}
}

// BenchmarkLooplabNew is the baseline for BenchmarkNewMachine.
func BenchmarkLooplabNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkF = looplab.NewFSM("new", rawEvents, nil)
	}
}

func BenchmarkFireIllegal(b *testing.B) {
	ctx := context.Background()
	m := fsm.NewMachine(fsm.Connecting)
	b.ReportAllocs()
	for b.Loop() {
		_, _, sinkErr = m.Fire(ctx, fsm.EventStart)
	}
}

func BenchmarkMachineState(b *testing.B) {
	m := fsm.NewMachine(fsm.Connected)
	b.ReportAllocs()
	for b.Loop() {
		sinkState = m.State()
	}
}

func BenchmarkAllow(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkErr = fsm.Allow(fsm.Connected, fsm.CmdTask)
	}
}

func BenchmarkAllowIllegal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkErr = fsm.Allow(fsm.Connecting, fsm.CmdTask)
	}
}

// BenchmarkLooplabCan is looplab's own legality check, the baseline for
// BenchmarkAllow.
func BenchmarkLooplabCan(b *testing.B) {
	f := looplab.NewFSM("connected", rawEvents, nil)
	b.ReportAllocs()
	var ok bool
	for b.Loop() {
		ok = f.Can("close")
	}
	_ = ok
}

func BenchmarkNext(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkState, sinkErr = fsm.Next(fsm.Connecting, fsm.EventJoin)
	}
}
