package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	guardjs "github.com/streamsession/streamsession/js/guard"
)

// PathGuardJS serves the browser guard: the ES module @streamsession/guard
// (js/guard/index.js), which a page imports from the server it talks to.
const PathGuardJS = "/v1/guard.js"

// guardJSETag is the strong ETag of guardjs.IndexJS.
var guardJSETag = func() string {
	sum := sha256.Sum256(guardjs.IndexJS)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// serveGuardJS answers GET /v1/guard.js without authentication: the module
// holds the public state rules only. It is revalidated on every use (no-cache
// and a strong ETag), so a page never runs the rules of an older server.
// CORS headers are those of every answer (Server.ServeHTTP), which a
// cross-origin module import needs.
func serveGuardJS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", guardJSETag)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "guard.js", time.Time{}, bytes.NewReader(guardjs.IndexJS))
}
