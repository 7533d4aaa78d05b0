// Package readme splices the session machine's Mermaid diagram into the
// README between two markers. It is the logic of the readmediagram command
// (go generate) and of the root test that fails when the README drifts from
// the code.
//
// Where to start: Splice. Everything in the package is a pure function, safe
// for concurrent use.
package readme

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/streamsession/streamsession/fsm"
)

// The markers around the generated block. Each must appear exactly once,
// Begin before End.
const (
	Begin = "<!-- fsm-diagram:begin -->"
	End   = "<!-- fsm-diagram:end -->"
)

// Block returns the generated block: fsm.Mermaid() in a ```mermaid fenced
// code block, ending with a newline.
func Block() string {
	return "```mermaid\n" + fsm.Mermaid() + "```\n"
}

// ErrMarkers is wrapped by the errors of Splice and Current when the
// markers are missing, repeated or out of order.
var ErrMarkers = errors.New("readme: diagram markers")

// Splice returns readme with everything between Begin and End replaced by
// a newline and block, and every other byte kept. It fails, wrapping
// ErrMarkers, unless each marker appears exactly once, Begin first.
func Splice(readme []byte, block string) ([]byte, error) {
	i, j, err := find(readme)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(readme)+len(block))
	out = append(out, readme[:i]...)
	out = append(out, '\n')
	out = append(out, block...)
	return append(out, readme[j:]...), nil
}

// Current returns what lies between the markers of readme.
func Current(readme []byte) (string, error) {
	i, j, err := find(readme)
	if err != nil {
		return "", err
	}
	return string(readme[i:j]), nil
}

// find returns the offsets just after Begin and at End.
func find(readme []byte) (int, int, error) {
	for _, m := range []string{Begin, End} {
		if n := bytes.Count(readme, []byte(m)); n != 1 {
			return 0, 0, fmt.Errorf("%w: %q appears %d times, want once", ErrMarkers, m, n)
		}
	}
	i := bytes.Index(readme, []byte(Begin)) + len(Begin)
	j := bytes.Index(readme, []byte(End))
	if j < i {
		return 0, 0, fmt.Errorf("%w: %q comes before %q", ErrMarkers, End, Begin)
	}
	return i, j, nil
}
