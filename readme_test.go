package streamsession_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
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

// TestReadmeIsShort keeps README.md a page a newcomer reads in ten minutes:
// details belong in docs/.
func TestReadmeIsShort(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	lines := bytes.Count(data, []byte("\n"))
	assert.LessOrEqual(t, lines, 300, "README.md has %d lines; move details to docs/", lines)
}

// TestDocLinksResolve fails when README.md or a page of docs/ links to a
// file of the repository that does not exist.
func TestDocLinksResolve(t *testing.T) {
	pages, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	pages = append(pages, "README.md")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)\s]*)?\)`)
	for _, page := range pages {
		data, err := os.ReadFile(page)
		require.NoError(t, err)
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			_, err := os.Stat(filepath.Join(filepath.Dir(page), target))
			assert.NoError(t, err, "%s links to %s", page, target)
		}
	}
}

// TestConfigurationDocListsEveryFlag builds the server, reads the flags its
// -h prints, and requires docs/configuration.md's flag table to list each
// of them once, and no other.
func TestConfigurationDocListsEveryFlag(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the flag table test builds the server with go, not on PATH, and CI is set")
		}
		t.Skip("skipping: no go command on PATH to build the server (with CI set this fails)")
	}
	bin := filepath.Join(t.TempDir(), "streaming")
	out, err := exec.Command(goBin, "build", "-o", bin, "./examples/streaming").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	var help bytes.Buffer
	cmd := exec.Command(bin, "-h")
	cmd.Stdout, cmd.Stderr = &help, &help
	err = cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "-h exits with a usage status")
	printed := flagNames(regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`), help.String())
	require.NotEmpty(t, printed, "no flag in -h's output:\n%s", help.String())

	doc, err := os.ReadFile("docs/configuration.md")
	require.NoError(t, err)
	table, err := between(string(doc), "<!-- flags:begin -->", "<!-- flags:end -->")
	require.NoError(t, err)
	rows := regexp.MustCompile("(?m)^\\| `-([a-z0-9-]+)[ `]")
	documented := flagNames(rows, table)
	for _, name := range printed {
		assert.Contains(t, documented, name, "-%s is printed by -h but not in docs/configuration.md's flag table", name)
	}
	for _, name := range documented {
		assert.Contains(t, printed, name, "-%s is in docs/configuration.md's flag table but -h does not print it", name)
	}
	seen := map[string]bool{}
	for _, m := range rows.FindAllStringSubmatch(table, -1) {
		assert.False(t, seen[m[1]], "-%s is listed twice", m[1])
		seen[m[1]] = true
	}
}

// flagNames returns the first submatch of every match of re in s, sorted.
func flagNames(re *regexp.Regexp, s string) []string {
	var names []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		names = append(names, m[1])
	}
	sort.Strings(names)
	return names
}

// between returns the text of s between the begin and end markers, which
// must appear once each, in that order.
func between(s, begin, end string) (string, error) {
	if strings.Count(s, begin) != 1 || strings.Count(s, end) != 1 {
		return "", os.ErrNotExist
	}
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if j < i {
		return "", os.ErrInvalid
	}
	return s[i+len(begin) : j], nil
}
