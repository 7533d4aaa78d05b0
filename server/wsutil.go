package server

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/websocket"
)

// ParseBaseURL parses a public base URL (Config.BaseURL and its siblings)
// into the base of the socket URLs a node hands out: an absolute http,
// https, ws or wss URL, whose scheme becomes ws or wss, with no trailing
// slash, query or fragment. Its error names the value and what is wrong;
// the caller says which setting it is.
func ParseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("%q: scheme must be http, https, ws or wss", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// IsHandshake reports whether r is a WebSocket version 13 opening
// handshake the upgrader accepts (its method, Connection and Upgrade
// headers, version and a 16-byte key), so that a handler can refuse with a
// body of its own before it changes any state.
func IsHandshake(r *http.Request) bool {
	if r.Method != http.MethodGet || !websocket.IsWebSocketUpgrade(r) {
		return false
	}
	version := false
	for _, v := range r.Header.Values("Sec-Websocket-Version") {
		for t := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(t) == "13" {
				version = true
			}
		}
	}
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-Websocket-Key"))
	return version && err == nil && len(key) == 16
}

// AllowsSocket reports whether p lets r open a WebSocket: r has no Origin
// header (not a browser), its origin is allowed, or it is the server's own
// (the Host r was sent to). A nil policy allows the last two only.
func (p *OriginPolicy) AllowsSocket(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || p.Allows(origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
