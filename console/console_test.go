package console

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// get serves one request through h and returns the recorded answer.
func get(t *testing.T, h http.Handler, method, target string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

func TestHandlerServesPageAndAssets(t *testing.T) {
	h := Handler()
	tests := []struct {
		path        string
		status      int
		contentType string
		contains    string
	}{
		{"/", 200, "text/html; charset=utf-8", `<svg id="diagram"`},
		{"/index.html", 200, "text/html; charset=utf-8", `<script type="module" src="app.js"></script>`},
		{"/style.css", 200, "text/css; charset=utf-8", "#diagram .node.active rect"},
		{"/app.js", 200, "text/javascript; charset=utf-8", `"/streaming.new"`},
		{"/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"/guard.js", 200, "text/javascript; charset=utf-8", "export class SessionGuard"},
		{"/config.json", 200, "application/json", `"api_base":"/v1"`},
		{"/missing.js", 404, "application/json", `{"code":40051,"message":"Resource is not found"}`},
		{"/static/app.js", 404, "application/json", `{"code":40051,"message":"Resource is not found"}`},
		{"/v1/streaming.list", 404, "application/json", `{"code":40051,"message":"Resource is not found"}`},
		{"/app.js/", 404, "application/json", `{"code":40051,"message":"Resource is not found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res := get(t, h, http.MethodGet, tt.path, nil)
			assert.Equal(t, tt.status, res.StatusCode)
			assert.Equal(t, tt.contentType, res.Header.Get("Content-Type"))
			assert.Contains(t, body(t, res), tt.contains)
		})
	}
}

func TestHandlerSecurityAndCacheHeaders(t *testing.T) {
	res := get(t, Handler(), http.MethodGet, "/", nil)
	require.Equal(t, 200, res.StatusCode)
	assert.Equal(t, "no-cache", res.Header.Get("Cache-Control"))
	assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	assert.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"))
	assert.Equal(t,
		"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' ws: wss:; "+
			"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		res.Header.Get("Content-Security-Policy"))
	etag := res.Header.Get("ETag")
	require.Regexp(t, `^"[0-9a-f]{32}"$`, etag)

	again := get(t, Handler(), http.MethodGet, "/", http.Header{"If-None-Match": {etag}})
	assert.Equal(t, http.StatusNotModified, again.StatusCode)
	assert.Empty(t, body(t, again))

	js := get(t, Handler(), http.MethodGet, "/app.js", nil)
	assert.NotEqual(t, etag, js.Header.Get("ETag"), "each file has its own ETag")
}

func TestHandlerMethods(t *testing.T) {
	h := Handler()
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		t.Run(method, func(t *testing.T) {
			res := get(t, h, method, "/", nil)
			assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
			assert.Equal(t, "GET, HEAD", res.Header.Get("Allow"))
		})
	}
	t.Run("HEAD", func(t *testing.T) {
		res := get(t, h, http.MethodHead, "/app.js", nil)
		assert.Equal(t, 200, res.StatusCode)
		assert.Equal(t, "text/javascript; charset=utf-8", res.Header.Get("Content-Type"))
		assert.Empty(t, body(t, res))
	})
}

func TestHandlerConfig(t *testing.T) {
	tests := []struct {
		name    string
		opts    []Options
		want    string
		connect string // the CSP's connect-src
	}{
		{
			name:    "no options",
			want:    `{"api_base":"/v1","demo_keys":[]}`,
			connect: "connect-src 'self' ws: wss:;",
		},
		{
			name: "demo keys in order, empty keys left out, unnamed keys numbered",
			opts: []Options{{DemoKeys: []DemoKey{
				{Name: "demo-trial", APIKey: "demo-trial-key"},
				{Name: "no key"},
				{APIKey: "k3"},
			}}},
			want:    `{"api_base":"/v1","demo_keys":[{"name":"demo-trial","api_key":"demo-trial-key"},{"name":"key 3","api_key":"k3"}]}`,
			connect: "connect-src 'self' ws: wss:;",
		},
		{
			name:    "API base under a prefix, trailing slash trimmed",
			opts:    []Options{{APIBase: "/api/v1/"}},
			want:    `{"api_base":"/api/v1","demo_keys":[]}`,
			connect: "connect-src 'self' ws: wss:;",
		},
		{
			name:    "API on another origin is allowed by the CSP",
			opts:    []Options{{APIBase: "https://api.example.test:8443/v1"}},
			want:    `{"api_base":"https://api.example.test:8443/v1","demo_keys":[]}`,
			connect: "connect-src 'self' ws: wss: https://api.example.test:8443;",
		},
		{
			name: "several options merge field by field",
			opts: []Options{
				{APIBase: "/a", DemoKeys: []DemoKey{{Name: "one", APIKey: "k1"}}},
				{APIBase: "/b"},
			},
			want:    `{"api_base":"/b","demo_keys":[{"name":"one","api_key":"k1"}]}`,
			connect: "connect-src 'self' ws: wss:;",
		},
		{
			name:    "markup in a key is escaped",
			opts:    []Options{{DemoKeys: []DemoKey{{Name: "</script>", APIKey: "a&b"}}}},
			want:    `{"api_base":"/v1","demo_keys":[{"name":"\u003c/script\u003e","api_key":"a\u0026b"}]}`,
			connect: "connect-src 'self' ws: wss:;",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, Handler(tt.opts...), http.MethodGet, "/config.json", nil)
			require.Equal(t, 200, res.StatusCode)
			got := body(t, res)
			assert.Equal(t, tt.want, got)
			assert.True(t, json.Valid([]byte(got)))
			assert.Contains(t, res.Header.Get("Content-Security-Policy"), tt.connect)
		})
	}
}

// attrRefs finds the URLs a page or stylesheet makes the browser fetch.
var attrRefs = regexp.MustCompile(`(?i)(?:\ssrc|\shref)\s*=\s*["']([^"']*)["']|url\(\s*["']?([^"')]*)`)

// TestMountedUnderPrefix checks that the page works under a prefix: every
// src and href of the page is relative and the handler serves it there.
func TestMountedUnderPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res, err := srv.Client().Get(srv.URL + "/console")
	require.NoError(t, err)
	page := body(t, res)
	require.NoError(t, res.Body.Close())
	require.Equal(t, 200, res.StatusCode)
	assert.Equal(t, srv.URL+"/console/", res.Request.URL.String(), "the mux redirects to the trailing slash")

	refs := attrRefs.FindAllStringSubmatch(page, -1)
	require.GreaterOrEqual(t, len(refs), 3, "the page links its stylesheet, script and icon")
	base, err := url.Parse(srv.URL + "/console/")
	require.NoError(t, err)
	for _, m := range refs {
		ref := m[1] + m[2]
		if strings.HasPrefix(ref, "#") {
			continue // a fragment inside the page (SVG markers)
		}
		t.Run(ref, func(t *testing.T) {
			u, err := url.Parse(ref)
			require.NoError(t, err)
			assert.False(t, u.IsAbs() || u.Host != "" || strings.HasPrefix(u.Path, "/"), "%q is not relative", ref)
			res, err := srv.Client().Get(base.ResolveReference(u).String())
			require.NoError(t, err)
			require.NoError(t, res.Body.Close())
			assert.Equal(t, 200, res.StatusCode)
		})
	}
}

// anyURL matches anything with a scheme followed by "//" and a protocol-relative
// reference in an attribute or url().
var (
	anyURL          = regexp.MustCompile(`(?i)[a-z][a-z0-9+.-]*:\/\/[^\s"'<>)]*`)
	protocolRelURL  = regexp.MustCompile(`(?i)(?:src|href)\s*=\s*["']\s*//|url\(\s*["']?\s*//|import\s*\(?\s*["']\s*//`)
	allowedURLNames = map[string]bool{
		// The SVG XML namespace: a name that identifies the vocabulary, never fetched.
		"http://www.w3.org/2000/svg": true,
	}
)

// TestNoExternalReferences reads every embedded file: the page must work
// offline, so nothing may point at another host or a CDN.
func TestNoExternalReferences(t *testing.T) {
	var names []string
	err := fs.WalkDir(static, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, name)
		}
		return err
	})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"static/index.html", "static/style.css", "static/app.js", "static/favicon.svg"}, names)

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := static.ReadFile(name)
			require.NoError(t, err)
			text := string(b)
			for _, u := range anyURL.FindAllString(text, -1) {
				assert.True(t, allowedURLNames[u], "%s refers to %q", name, u)
			}
			assert.Empty(t, protocolRelURL.FindAllString(text, -1), "%s has a protocol-relative reference", name)
			assert.NotContains(t, strings.ToLower(text), "cdn")
			assert.NotContains(t, strings.ToLower(text), "@import")
		})
	}
}

// TestNoExternalReferencesDetects keeps the scan honest: each pattern
// catches what it is meant to catch.
func TestNoExternalReferencesDetects(t *testing.T) {
	tests := []struct {
		text string
		re   *regexp.Regexp
	}{
		{`<script src="https://cdn.example.test/x.js">`, anyURL},
		{`fetch("http://127.0.0.1:8080/v1")`, anyURL},
		{`new WebSocket("wss://example.test/ws")`, anyURL},
		{`<link href="//fonts.example.test/a.css">`, protocolRelURL},
		{`background: url( '//example.test/a.png')`, protocolRelURL},
		{`import("//example.test/m.js")`, protocolRelURL},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			m := tt.re.FindString(tt.text)
			assert.NotEmpty(t, m)
			assert.False(t, allowedURLNames[m])
		})
	}
}

// TestPageIDs pins the ids and data attributes the browser test and
// readers of the page rely on.
func TestPageIDs(t *testing.T) {
	page := body(t, get(t, Handler(), http.MethodGet, "/", nil))
	for _, want := range []string{
		`id="account"`, `id="api-key"`, `id="use-token"`, `id="avatar"`, `id="task-text"`,
		`id="btn-new"`, `id="btn-start"`, `id="btn-connect"`, `id="btn-task"`, `id="btn-interrupt"`,
		`id="btn-keep-alive"`, `id="btn-stop"`, `id="btn-reconnect"`, `id="btn-disconnect"`,
		`id="error-new"`, `id="error-start"`, `id="error-connect"`, `id="error-task"`,
		`id="error-interrupt"`, `id="error-keep-alive"`, `id="error-stop"`, `id="error-list"`,
		`id="server-status"`, `id="server-down"`, `id="sessions"`, `id="log"`, `id="socket-status"`,
		`data-state="new"`, `data-state="connecting"`, `data-state="connected"`,
		`data-state="closing"`, `data-state="closed"`,
	} {
		assert.Contains(t, page, want)
	}
}
