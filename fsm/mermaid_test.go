package fsm_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestMermaidGolden pins the generated diagram; run with -update to accept a
// deliberate change to the lifecycle.
func TestMermaidGolden(t *testing.T) {
	golden := filepath.Join("testdata", "machine.mmd")
	got := fsm.Mermaid()
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test -run TestMermaidGolden -update ./fsm/ to create it")
	assert.Equal(t, string(want), got)
	assert.Equal(t, got, fsm.Mermaid(), "deterministic")
}

// TestMermaidMatchesNext checks every transition drawn is one Next allows and
// every transition Next allows is drawn.
func TestMermaidMatchesNext(t *testing.T) {
	drawn := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(fsm.Mermaid()), "\n")[1:] {
		drawn[strings.TrimSpace(line)] = true
	}
	want := map[string]bool{"[*] --> new": true, "closed --> [*]": true}
	for _, s := range fsm.States() {
		for _, ev := range fsm.Events() {
			if to, err := fsm.Next(s, ev); err == nil {
				want[s.String()+" --> "+to.String()+": "+ev.String()] = true
			}
		}
	}
	assert.Equal(t, want, drawn)
}
