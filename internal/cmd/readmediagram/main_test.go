package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/internal/cmd/readmediagram/readme"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "README.md")
	stale := "# T\n\n" + readme.Begin + "\n" + readme.End + "\n\nrest\n"
	require.NoError(t, os.WriteFile(file, []byte(stale), 0o600))
	var stdout, stderr bytes.Buffer

	assert.Equal(t, 1, run([]string{"-file", file, "-check"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "run go generate")
	got, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, stale, string(got), "-check writes nothing")

	stderr.Reset()
	assert.Equal(t, 0, run([]string{"-file", file}, &stdout, &stderr))
	assert.Empty(t, stderr.String())
	got, err = os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "# T\n\n"+readme.Begin+"\n"+readme.Block()+readme.End+"\n\nrest\n", string(got))
	fi, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the mode is kept")

	assert.Equal(t, 0, run([]string{"-file", file, "-check"}, &stdout, &stderr))
	assert.Equal(t, 0, run([]string{"-file", file}, &stdout, &stderr), "up to date: nothing to do")
}

func TestRunFailures(t *testing.T) {
	dir := t.TempDir()
	noMarkers := filepath.Join(dir, "plain.md")
	require.NoError(t, os.WriteFile(noMarkers, []byte("# T\n"), 0o644))
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"missing file", []string{"-file", filepath.Join(dir, "missing.md")}, 1},
		{"no markers", []string{"-file", noMarkers}, 1},
		{"bad flag", []string{"-nope"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			assert.Equal(t, tt.code, run(tt.args, &stdout, &stderr))
			assert.NotEmpty(t, stderr.String())
		})
	}
	got, err := os.ReadFile(noMarkers)
	require.NoError(t, err)
	assert.Equal(t, "# T\n", string(got))
}
