// Package browsertest starts the headless Chromium of the project's browser
// tests: Debian's chromium, which .ci/run installs, or the binary the
// environment variable STREAMSESSION_CHROMIUM names. Without a browser a
// test skips, saying how to get one, unless CI is set: then it fails.
package browsertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium.
const chromiumPath = "/usr/bin/chromium"

// Find returns the browser binary, or skips the test when there is none
// and CI is unset; with CI set a missing browser fails the test.
func Find(t testing.TB) string {
	t.Helper()
	candidates := []string{chromiumPath, "chromium"}
	if p := os.Getenv("STREAMSESSION_CHROMIUM"); p != "" {
		candidates = []string{p}
	}
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	what := strings.Join(candidates, " or ")
	if os.Getenv("CI") != "" {
		t.Fatalf("no browser for %s (%s) and CI is set: install Debian's chromium package", t.Name(), what)
	}
	t.Skipf("skipping %s: no browser (%s); install Debian's chromium package "+
		"or set STREAMSESSION_CHROMIUM (in CI, where CI is set, a missing browser fails)", t.Name(), what)
	return ""
}

// Start starts a headless chromium with a fresh profile, the options the
// closed network here needs (no background networking, no component
// updates) and extra, and returns its tab. The test's cleanup closes the
// browser and waits for the process to exit.
func Start(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	execPath := Find(t)
	// TempDir before the browser's cleanup: cleanups run last-in first-out,
	// so chromium exits before its profile is removed.
	profile := t.TempDir()
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(profile),
	}, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Cancel closes the browser gracefully and waits for it to exit, so
		// no chromedp goroutine outlives the test; the cancels free the rest.
		closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := chromedp.Cancel(closeCtx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing chromium: %v", err)
		}
		cancelTab()
		cancelAlloc()
	})
	// The first action starts the browser. It runs on the tab's own
	// context, not one with a deadline: the browser lives as long as that
	// context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", execPath, err)
	}
	return ctx
}
