// Package console serves the live session console: one browser page that
// drives a streaming session through the public Streaming API exactly as an
// outside client would (streaming.new, start, the realtime socket, task,
// interrupt, keep_alive, stop) and shows what happens: the session's state
// on a drawing of the five-state machine, the server's error next to the
// button that caused it, the account's open sessions and the socket's events.
// When the server serves media (HeyGen v1: streaming.new answers an sdp
// offer), Start answers the offer from a plain RTCPeerConnection, trickles
// the page's candidates with streaming.ice and plays the avatar's video and
// voice, with the peer's state shown beside the session's and the data
// channel's talking events in the log: the session is then connected by its
// media, not by the socket. Without an offer the page runs the socket flow.
// Every button naming the session is checked first by the guard of package
// js/guard (served as guard.js): a click the session's state does not allow
// shows the error the server would answer and sends no request.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary: no build
// step, no CDN, no request to any other host, so it works offline. It calls
// no private endpoint; the only thing the handler adds to the static files is
// config.json, which lists the demo API keys to offer and where the API is.
//
// Start with [Handler]: mount it at "/" next to the API handler (which serves
// /v1/...), or under a prefix with [net/http.StripPrefix].
//
// Concurrency: the handler returned by Handler is immutable after
// construction and safe for concurrent use by multiple goroutines.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/js/guard"
)

//go:embed static
var static embed.FS

// DefaultAPIBase is where the page looks for the Streaming API when
// Options.APIBase is empty: the /v1 endpoints of the server that serves the
// page.
const DefaultAPIBase = "/v1"

// DemoKey is an API key the page offers in its account picker.
//
// Only put public demo keys here (those of a built-in demo configuration):
// config.json, and so the key, is readable by anyone who can load the page.
// A DemoKey is a plain value, safe to copy.
type DemoKey struct {
	// Name labels the key in the picker ("demo-trial").
	Name string
	// APIKey is sent as X-Api-Key.
	APIKey string
}

// Options configures the console. The zero value offers no demo keys (the
// user pastes one) and calls the API at DefaultAPIBase.
// An Options is a plain value, safe to copy.
type Options struct {
	// DemoKeys are offered in the account picker, in this order. Keys with
	// an empty APIKey are left out; an empty Name is shown as "key N".
	DemoKeys []DemoKey
	// APIBase is the Streaming API's base, without the trailing slash: a
	// path on the page's own origin ("/v1", the default) or an absolute
	// http(s) URL. A URL on another origin must answer CORS preflights
	// (X-Api-Key, Authorization and Content-Type headers), which the
	// project's server does not do.
	APIBase string
}

// Handler returns the console's http.Handler. It serves the page at "/" (and
// "/index.html"), its assets (style.css, app.js, favicon.svg), guard.js (the
// module of package js/guard, which checks every button before any request)
// and config.json, answers GET and HEAD only (405 otherwise) and 404 for any
// other path. It resolves every path relative to its own root, so it works
// at "/" or under a prefix removed by http.StripPrefix (mount it at
// "/console/", not "/console": the page's links are relative).
//
// Handler takes zero or one Options. When several are given they are merged
// field by field, a later non-empty field replacing an earlier one.
//
// Every answer carries Cache-Control: no-cache with a strong ETag, so a
// browser always revalidates and never runs a stale page after an upgrade,
// and a Content-Security-Policy that lets the page reach only its own origin
// (and the API's, when APIBase is another origin).
func Handler(opts ...Options) http.Handler {
	var o Options
	for _, opt := range opts {
		if opt.DemoKeys != nil {
			o.DemoKeys = opt.DemoKeys
		}
		if opt.APIBase != "" {
			o.APIBase = opt.APIBase
		}
	}
	h, err := newHandler(o)
	if err != nil {
		// The embedded files are part of the binary: failing to read them is a
		// build defect that the package's tests catch, not a runtime condition.
		panic(err)
	}
	return h
}

// asset is one file the handler serves.
type asset struct {
	contentType string
	body        []byte
	etag        string
}

type handler struct {
	assets map[string]asset // by request path ("/", "/app.js", ...)
	csp    string
}

// contentTypes lists the embedded file types; a static file of another type
// is a build defect (the package's tests serve every embedded file).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
}

// pageConfig is config.json: what the page needs to know before its first call.
type pageConfig struct {
	APIBase  string        `json:"api_base"`
	DemoKeys []pageDemoKey `json:"demo_keys"`
}

type pageDemoKey struct {
	Name   string `json:"name"`
	APIKey string `json:"api_key"`
}

func newHandler(o Options) (*handler, error) {
	h := &handler{assets: make(map[string]asset)}
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("console: no content type for embedded file %s", name)
		}
		body, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		h.add(strings.TrimPrefix(name, "static"), ct, body)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The guard the page checks every button with: the server's command
	// policy as an ES module, the same file the API serves at /v1/guard.js.
	h.add("/guard.js", contentTypes[".js"], guard.IndexJS)
	index, ok := h.assets["/index.html"]
	if !ok {
		return nil, fmt.Errorf("console: static/index.html is not embedded")
	}
	h.assets["/"] = index

	base := strings.TrimRight(o.APIBase, "/")
	if o.APIBase == "" {
		base = DefaultAPIBase
	}
	cfg := pageConfig{APIBase: base, DemoKeys: []pageDemoKey{}}
	for i, k := range o.DemoKeys {
		if k.APIKey == "" {
			continue
		}
		name := k.Name
		if name == "" {
			name = fmt.Sprintf("key %d", i+1)
		}
		cfg.DemoKeys = append(cfg.DemoKeys, pageDemoKey{Name: name, APIKey: k.APIKey})
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	h.add("/config.json", contentTypes[".json"], body)
	h.csp = contentSecurityPolicy(base)
	return h, nil
}

func (h *handler) add(name, contentType string, body []byte) {
	sum := sha256.Sum256(body)
	h.assets[name] = asset{
		contentType: contentType,
		body:        body,
		etag:        `"` + hex.EncodeToString(sum[:16]) + `"`,
	}
}

// contentSecurityPolicy allows the page's own origin only, plus the API's
// origin when apiBase is an absolute URL. connect-src names ws: and wss:
// because the realtime_endpoint URL is the server's to choose (a proxy may
// put it on another host); every other directive is 'self'.
func contentSecurityPolicy(apiBase string) string {
	connect := "'self' ws: wss:"
	if u, err := url.Parse(apiBase); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		connect += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src " + connect + "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		sserrors.Write(w, sserrors.ErrResourceNotFound.WithStatus(http.StatusMethodNotAllowed))
		return
	}
	name := r.URL.Path
	if name == "" {
		name = "/"
	}
	a, ok := h.assets[name]
	if !ok {
		// The same JSON 404 as the API's, so a client never has to parse
		// two kinds of error from one server.
		sserrors.Write(w, sserrors.ErrResourceNotFound)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", a.etag)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Content-Security-Policy", h.csp)
	// ServeContent answers conditional (If-None-Match: 304), range and HEAD
	// requests; a zero modtime leaves Last-Modified out.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
