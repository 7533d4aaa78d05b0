package fsm

import (
	"slices"

	looplab "github.com/looplab/fsm"
	"strings"
	"sync"
)

// Mermaid returns the lifecycle as a Mermaid state diagram
// ("stateDiagram-v2"), drawn from the same definition the machines run: the
// states in lifecycle order, each transition labelled with its event, and the
// start (new) and end (closed) marked. The text is built once and the same
// string returned thereafter; it is safe for concurrent use.
func Mermaid() string { return mermaid() }

var mermaid = sync.OnceValue(func() string { return drawMermaid(definition) })

func drawMermaid(defs looplab.Events) string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	b.WriteString("    [*] --> " + New.String() + "\n")
	for _, s := range States() {
		for _, d := range defs {
			if slices.Contains(d.Src, s.String()) {
				b.WriteString("    " + s.String() + " --> " + d.Dst + ": " + d.Name + "\n")
			}
		}
	}
	b.WriteString("    " + Closed.String() + " --> [*]\n")
	return b.String()
}
