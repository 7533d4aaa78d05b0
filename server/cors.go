package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// CORS answers, for the browser apps of Config.Origins.
const (
	// CORSAllowHeaders are the request headers a preflight allows.
	CORSAllowHeaders = "Authorization, X-Api-Key, Content-Type, Idempotency-Key"
	// CORSExposeHeaders are the answer headers a page may read besides the
	// simple ones.
	CORSExposeHeaders = "Retry-After, " + ReplayedHeader
	// CORSMaxAge is how long a browser may cache a preflight's answer.
	CORSMaxAge = 10 * time.Minute
)

// OriginPolicy is the set of browser origins allowed to call the API (CORS)
// and to open the realtime socket: the one policy for both, built from
// Config.Origins. An entry is "*" (any origin), an exact origin
// ("https://app.example.com"), or an origin whose port is "*"
// ("http://localhost:*": that scheme and host on any port, the default one
// included). Schemes and hosts match case-insensitively, and an explicit
// default port (":80" for http, ":443" for https) is the same origin as
// none. A nil or empty policy allows no origin. An OriginPolicy is
// immutable once built, safe for concurrent use by multiple goroutines.
type OriginPolicy struct {
	any     bool
	exact   map[string]bool // "scheme://host[:port]", default port left out
	anyPort map[string]bool // "scheme://host" of the "scheme://host:*" entries
}

// NewOriginPolicy parses origins (see [OriginPolicy]). It fails, naming
// the entry, on anything else: a path, query or user part, an empty host,
// a port that is neither a number nor "*".
func NewOriginPolicy(origins []string) (*OriginPolicy, error) {
	p := &OriginPolicy{exact: make(map[string]bool), anyPort: make(map[string]bool)}
	for i, o := range origins {
		if strings.TrimSpace(o) == "*" {
			p.any = true
			continue
		}
		site, port, err := parseOrigin(strings.TrimSuffix(strings.TrimSpace(o), "/"), true)
		if err != nil {
			return nil, fmt.Errorf("[%d] %q: %w", i, o, err)
		}
		if port == "*" {
			p.anyPort[site] = true
		} else {
			p.exact[joinPort(site, port)] = true
		}
	}
	return p, nil
}

// Allows reports whether a request with this Origin header value comes
// from an allowed origin. The empty string (no Origin header) is not an
// origin: callers decide what a request without one gets.
func (p *OriginPolicy) Allows(origin string) bool {
	if p == nil || origin == "" {
		return false
	}
	if p.any {
		return true
	}
	site, port, err := parseOrigin(origin, false)
	if err != nil {
		return false
	}
	return p.exact[joinPort(site, port)] || p.anyPort[site]
}

// empty reports whether p allows no origin at all.
func (p *OriginPolicy) empty() bool {
	return p == nil || !p.any && len(p.exact) == 0 && len(p.anyPort) == 0
}

// parseOrigin splits an origin into "scheme://host" (lower case, IPv6 in
// brackets) and its port, "" for the scheme's default; with wildcard, the
// port may be "*".
func parseOrigin(origin string, wildcard bool) (site, port string, err error) {
	scheme, rest, ok := strings.Cut(origin, "://")
	if !ok || scheme == "" {
		return "", "", fmt.Errorf("not scheme://host[:port]")
	}
	if strings.ContainsAny(rest, "/?#@\\ ") {
		return "", "", fmt.Errorf("an origin has no path, query, fragment or user")
	}
	hostport := rest
	if wildcard && strings.HasSuffix(rest, ":*") {
		hostport = strings.TrimSuffix(rest, ":*")
	}
	u, err := url.Parse(scheme + "://" + hostport)
	if err != nil || u.Hostname() == "" || u.Opaque != "" {
		return "", "", fmt.Errorf("not scheme://host[:port]")
	}
	scheme = strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	} else if strings.Trim(host, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != "" {
		return "", "", fmt.Errorf("host %q is not a name or an IP address", host)
	}
	site = scheme + "://" + host
	if hostport != rest {
		if u.Port() != "" {
			return "", "", fmt.Errorf("a port and a wildcard port")
		}
		return site, "*", nil
	}
	port = u.Port()
	if port == "" && strings.HasSuffix(hostport, ":") {
		return "", "", fmt.Errorf("an empty port")
	}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return "", "", fmt.Errorf("port %q is not a number from 0 to 65535", port)
		}
		port = strconv.FormatUint(n, 10)
	}
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	return site, port, nil
}

func joinPort(site, port string) string {
	if port == "" {
		return site
	}
	return site + ":" + port
}

// cors adds the CORS headers to w when r's Origin is allowed, and reports
// whether r is a preflight (OPTIONS with Access-Control-Request-Method),
// which the caller answers with preflight once it knows the path. An origin
// not allowed gets no CORS header; its browser then refuses the answer to
// the page.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) (preflight bool) {
	preflight = r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if s.originPolicy.empty() {
		return preflight
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if !s.originPolicy.Allows(origin) {
		return preflight
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if !preflight {
		h.Set("Access-Control-Expose-Headers", CORSExposeHeaders)
	}
	return preflight
}

// preflight answers a CORS preflight of a served path: 204, with the
// path's method and the allowed headers when the origin is allowed (cors
// set Access-Control-Allow-Origin then). It needs no authentication and
// changes nothing.
func preflight(w http.ResponseWriter, rt route) {
	h := w.Header()
	if h.Get("Access-Control-Allow-Origin") != "" {
		h.Set("Access-Control-Allow-Methods", rt.method)
		h.Set("Access-Control-Allow-Headers", CORSAllowHeaders)
		h.Set("Access-Control-Max-Age", strconv.Itoa(int(CORSMaxAge/time.Second)))
	}
	w.WriteHeader(http.StatusNoContent)
}
