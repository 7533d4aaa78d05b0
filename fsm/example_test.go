package fsm_test

import (
	"context"
	"fmt"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// Example walks one session's machine through its whole life, then shows what
// an event that the current state does not accept returns.
func Example() {
	ctx := context.Background()
	m := fsm.NewMachine(fsm.New)
	fmt.Println("created:", m.State())
	for _, ev := range []fsm.Event{fsm.EventStart, fsm.EventJoin, fsm.EventClose, fsm.EventClosed} {
		from, to, err := m.Fire(ctx, ev)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("%s: %s -> %s\n", ev, from, to)
	}

	_, _, err := m.Fire(ctx, fsm.EventStart)
	fmt.Println("start again:", sserrors.CodeOf(err), m.State())
	// Output:
	// created: new
	// start: new -> connecting
	// join: connecting -> connected
	// close: connected -> closing
	// closed: closing -> closed
	// start again: 10005 closed
}

// ExampleAllow checks API commands against the command policy before acting.
func ExampleAllow() {
	for _, cmd := range []fsm.Command{fsm.CmdICE, fsm.CmdTask, fsm.CmdStop} {
		if err := fsm.Allow(fsm.Connecting, cmd); err != nil {
			fmt.Printf("%s while connecting: %d\n", cmd, sserrors.CodeOf(err))
			continue
		}
		fmt.Printf("%s while connecting: allowed\n", cmd)
	}
	// Output:
	// ice while connecting: allowed
	// task while connecting: 10002
	// stop while connecting: allowed
}

// ExampleNext computes the state a stored session moves to, as a store doing
// compare-and-set would, without a Machine.
func ExampleNext() {
	to, err := fsm.Next(fsm.Connecting, fsm.EventJoin)
	fmt.Println(to, err)
	to, err = fsm.Next(fsm.Closed, fsm.EventClose)
	fmt.Println(to, sserrors.CodeOf(err))
	// Output:
	// connected <nil>
	// closed 10005
}

// ExampleMermaid prints the lifecycle diagram.
func ExampleMermaid() {
	fmt.Print(fsm.Mermaid())
	// Output:
	// stateDiagram-v2
	//     [*] --> new
	//     new --> connecting: start
	//     new --> closing: close
	//     connecting --> connected: join
	//     connecting --> closing: close
	//     connected --> closing: close
	//     closing --> closed: closed
	//     closed --> [*]
}
