package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromiumPath is Debian's chromium, as in the console's browser test; the
// environment variable STREAMSESSION_CHROMIUM names another binary.
const chromiumPath = "/usr/bin/chromium"

// findChromium returns the browser binary, or skips the test when there is
// none and CI is unset. In CI (CI non-empty) a missing browser fails.
func findChromium(t *testing.T) string {
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
		t.Fatalf("no browser for the CORS browser test (%s) and CI is set: install Debian's chromium package", what)
	}
	t.Skipf("skipping the CORS browser test: no browser (%s); install Debian's chromium package "+
		"or set STREAMSESSION_CHROMIUM (in CI, where CI is set, a missing browser fails)", what)
	return ""
}

// headlessTab starts a headless chromium with a fresh profile and returns
// its tab; the test's cleanup closes the browser and waits for it.
func headlessTab(t *testing.T) context.Context {
	t.Helper()
	execPath := findChromium(t)
	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(profile),
	)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := chromedp.Cancel(closeCtx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing chromium: %v", err)
		}
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", execPath, err)
	}
	return ctx
}

// corsPage is the page of the browser app: callNew calls streaming.new on
// the API with fetch and an API key, and answers "status:session_id:
// Retry-After" as the page can read them, or the name of the error fetch
// threw.
const corsPage = `<!doctype html><html><head><meta charset="utf-8"><title>app</title></head><body><script>
async function callNew(api) {
  try {
    const r = await fetch(api + "/v1/streaming.new", {
      method: "POST",
      headers: {"X-Api-Key": "key-acme", "Content-Type": "application/json"},
      body: "{}",
    });
    const j = await r.json();
    return r.status + ":" + ((j.data && j.data.session_id) || "") + ":" + (r.headers.get("Retry-After") || "");
  } catch (e) {
    return "threw:" + e.name;
  }
}
</script></body></html>`

// TestCORSInBrowser: a page served from a second origin calls the API with
// fetch in headless chromium. The page at http://127.0.0.1:PORT is allowed:
// it reads the session id, and a refusal's Retry-After. The same page at
// http://localhost:PORT is another origin, not allowed: fetch throws a
// TypeError and the server creates nothing.
func TestCORSInBrowser(t *testing.T) {
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, corsPage)
	}))
	defer pages.Close()
	_, port, err := net.SplitHostPort(pages.Listener.Addr().String())
	require.NoError(t, err)
	allowed, refused := "http://127.0.0.1:"+port, "http://localhost:"+port

	e := rateEnv(t, RateLimit{PerSecond: 0.001, Burst: 1}, func(c *Config) { c.Origins = []string{allowed} })
	tab := headlessTab(t)
	call := func(pageURL string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, 15*time.Second)
		defer cancel()
		_, err := chromedp.Run(ctx, chromedp.Navigate(pageURL+"/"))
		require.NoError(t, err, "loading %s", pageURL)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf("callNew(%q)", e.http.URL), chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		return got
	}
	sessions := func() []string {
		infos, err := e.mgr.List(context.Background(), "acme")
		require.NoError(t, err)
		var ids []string
		for _, i := range infos {
			ids = append(ids, i.ID)
		}
		return ids
	}

	assert.Equal(t, "threw:TypeError", call(refused), "an origin not allowed cannot call the API")
	assert.Empty(t, sessions(), "the refused origin created nothing")

	got := call(allowed)
	parts := strings.Split(got, ":")
	require.Len(t, parts, 3, got)
	assert.Equal(t, "200", parts[0])
	assert.Equal(t, []string{parts[1]}, sessions(), "the page read the id of the session it created")

	assert.Equal(t, "429::1000", call(allowed), "the page reads a refusal and its Retry-After")
	assert.Len(t, sessions(), 1)
}
