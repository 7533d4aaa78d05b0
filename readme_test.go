package streamsession_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/cmd/readmediagram/readme"
)

// The package's TestMain (goleak) is in e2e_harness_test.go.

// TestReadmeDiagram fails when the state diagram in README.md is not the
// one the code draws (fsm.Mermaid).
func TestReadmeDiagram(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	got, err := readme.Current(data)
	require.NoError(t, err, "README.md must hold the diagram markers once each")
	assert.Equal(t, "\n"+readme.Block(), got,
		"README.md's state diagram differs from what fsm.Mermaid() draws: run go generate")
}
