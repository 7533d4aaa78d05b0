package bench

import (
	"testing"

	looplab "github.com/looplab/fsm"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// lifecycleEvents is the streaming-session lifecycle written directly for
// looplab/fsm, as a user picking looplab instead of streamsession would.
var lifecycleEvents = looplab.Events{
	{Name: "start", Src: []string{"new"}, Dst: "connecting"},
	{Name: "join", Src: []string{"connecting"}, Dst: "connected"},
	{Name: "close", Src: []string{"new", "connecting", "connected"}, Dst: "closing"},
	{Name: "closed", Src: []string{"closing"}, Dst: "closed"},
}

// BenchmarkGuard is the client guard's check (may the client send a task
// now?) on a session known to be connected, against looplab's Can on a
// looplab machine in the same state. Goal: ≤ 0.1× looplab-can, 0 allocs.
func BenchmarkGuard(b *testing.B) {
	b.Run("streamsession", func(b *testing.B) {
		var g session.Guard
		g.Observe(fsm.Connected)
		if err := g.Check(fsm.CmdTask); err != nil {
			b.Fatalf("Check(task) on connected = %v, want nil", err)
		}
		b.ReportAllocs()
		// b.Loop keeps the calls in its body: no sink is needed, on either
		// side.
		for b.Loop() {
			g.Check(fsm.CmdTask)
		}
	})
	b.Run("looplab-can", func(b *testing.B) {
		f := looplab.NewFSM("connected", lifecycleEvents, nil)
		if !f.Can("close") {
			b.Fatal("Can(close) on connected = false, want true")
		}
		b.ReportAllocs()
		for b.Loop() {
			f.Can("close")
		}
	})
}
