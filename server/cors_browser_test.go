package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/browsertest"
)

// headlessTab starts a headless chromium (see internal/browsertest) and
// returns its tab; the test's cleanup closes the browser.
func headlessTab(t *testing.T) context.Context { return browsertest.Start(t) }

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
