package readme_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/cmd/readmediagram/readme"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestBlock(t *testing.T) {
	b := readme.Block()
	assert.True(t, strings.HasPrefix(b, "```mermaid\nstateDiagram-v2\n"), b)
	assert.True(t, strings.HasSuffix(b, "\n```\n"), b)
	assert.Equal(t, fsm.Mermaid(), strings.TrimSuffix(strings.TrimPrefix(b, "```mermaid\n"), "```\n"))
}

func TestSplice(t *testing.T) {
	const block = "```mermaid\nX\n```\n"
	const head, tail = "# Title\n\ntext before\n", "\n\n## After\nmore text\n"
	tests := []struct {
		name, in, want string
	}{
		{"empty block", head + readme.Begin + "\n" + readme.End + tail,
			head + readme.Begin + "\n" + block + readme.End + tail},
		{"markers on one line", head + readme.Begin + readme.End + tail,
			head + readme.Begin + "\n" + block + readme.End + tail},
		{"stale block", head + readme.Begin + "\n```mermaid\nold\n```\n" + readme.End + tail,
			head + readme.Begin + "\n" + block + readme.End + tail},
		{"up to date", head + readme.Begin + "\n" + block + readme.End + tail,
			head + readme.Begin + "\n" + block + readme.End + tail},
		{"CRLF around the markers is kept", "a\r\n" + readme.Begin + "\r\nold\r\n" + readme.End + "\r\nb\r\n",
			"a\r\n" + readme.Begin + "\n" + block + readme.End + "\r\nb\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readme.Splice([]byte(tt.in), block)
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
			again, err := readme.Splice(got, block)
			require.NoError(t, err)
			assert.Equal(t, string(got), string(again), "idempotent")
			cur, err := readme.Current(got)
			require.NoError(t, err)
			assert.Equal(t, "\n"+block, cur)
		})
	}
}

func TestSpliceRefusesBadMarkers(t *testing.T) {
	tests := []struct{ name, in string }{
		{"no markers", "# Title\n"},
		{"no end", readme.Begin + "\n"},
		{"no begin", readme.End + "\n"},
		{"begin twice", readme.Begin + readme.Begin + readme.End},
		{"end twice", readme.Begin + readme.End + readme.End},
		{"reversed", readme.End + "\n" + readme.Begin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readme.Splice([]byte(tt.in), "x")
			assert.ErrorIs(t, err, readme.ErrMarkers)
			assert.Nil(t, got)
			_, err = readme.Current([]byte(tt.in))
			assert.ErrorIs(t, err, readme.ErrMarkers)
		})
	}
}
