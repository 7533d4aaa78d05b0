package streamsession_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ssservice "github.com/streamsession/streamsession/service"
)

// TestQuickstart runs the README's Quickstart shell block, as a reader
// pastes it, with bash and curl against the demo configuration, and checks
// that every command prints what the block's "# " line under it promises
// ("…" stands for an id, a token or a number; a note after two spaces and
// in brackets is not output). A command without such a line must print
// nothing.
func TestQuickstart(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "grep", "cut"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("the Quickstart test needs %s and CI is set", tool)
			}
			t.Skipf("skipping the Quickstart test: no %s on PATH (with CI set this fails)", tool)
		}
	}
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	steps, err := quickstartSteps(readme)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(steps), 8, "the Quickstart block's commands")

	st := newStack(t, string(ssservice.DemoJSON))

	// One bash runs the block line by line, with a separator after each
	// command so that each one's output can be told apart.
	const sep = "\x1e"
	var script strings.Builder
	for _, s := range steps {
		script.WriteString(s.command + "\nprintf '" + sep + "'\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-c", script.String())
	cmd.Env = append(os.Environ(), "B="+st.http.URL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "bash: %s", stderr.String())
	assert.Empty(t, stderr.String(), "the block writes nothing on stderr")

	outputs := strings.Split(stdout.String(), sep)
	require.Len(t, outputs, len(steps)+1, "one output per command: %q", stdout.String())
	assert.Empty(t, outputs[len(steps)], "output after the last command")
	for i, s := range steps {
		got := strings.TrimSuffix(outputs[i], "\n")
		if s.want == nil {
			assert.Empty(t, got, "%s: prints nothing", s.command)
			continue
		}
		assert.Regexp(t, s.want, got, "%s", s.command)
	}
	assert.Equal(t, 0, st.slots(), "the block stops its session")
}

// quickstartStep is one command of the Quickstart block and the pattern its
// output must match (nil: no output).
type quickstartStep struct {
	command string
	want    *regexp.Regexp
}

var (
	quickstartBlock = regexp.MustCompile("(?s)<!-- quickstart:begin -->\n```sh\n(.*?)```\n<!-- quickstart:end -->")
	quickstartNote  = regexp.MustCompile(`\s{2,}\(.*\)$`)
)

// quickstartSteps reads the commands of the README's Quickstart block and,
// from the "# " lines under each, the pattern of its output.
func quickstartSteps(readme []byte) ([]quickstartStep, error) {
	m := quickstartBlock.FindAllSubmatch(readme, -1)
	if len(m) != 1 {
		return nil, fmt.Errorf("README.md holds %d Quickstart blocks between the quickstart markers, want 1", len(m))
	}
	var steps []quickstartStep
	var want []string
	flush := func() {
		if len(steps) > 0 && len(want) > 0 {
			steps[len(steps)-1].want = regexp.MustCompile("^" + strings.Join(want, "\n") + "$")
		}
		want = nil
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(m[0][1]), "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# "):
			if len(steps) == 0 {
				return nil, fmt.Errorf("the Quickstart block starts with an answer: %q", line)
			}
			text := quickstartNote.ReplaceAllString(strings.TrimPrefix(line, "# "), "")
			parts := strings.Split(text, "…")
			for i, p := range parts {
				parts[i] = regexp.QuoteMeta(p)
			}
			want = append(want, strings.Join(parts, `[^"]+`))
		case strings.TrimSpace(line) == "":
		default:
			flush()
			steps = append(steps, quickstartStep{command: line})
		}
	}
	flush()
	return steps, nil
}
