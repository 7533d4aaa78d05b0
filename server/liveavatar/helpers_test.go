package liveavatar_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/liveavatar"
	"github.com/streamsession/streamsession/session"
)

var (
	proPlan   = limits.Plan{Name: "pro", MaxConcurrent: 100}
	trialPlan = limits.Plan{Name: "trial", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 300, SessionDurationLimit: 600 * time.Second}
	accounts  = server.AccountsByKey{
		"key-acme":    {Name: "acme", Plan: proPlan},
		"key-globex":  {Name: "globex", Plan: proPlan},
		"key-trial":   {Name: "trial-co", Plan: trialPlan},
		"key-limited": {Name: "limited", Plan: limits.Plan{Name: "one", MaxConcurrent: 1}},
		"key-noquota": {Name: "noquota", Plan: limits.Plan{Name: "spent", MaxConcurrent: 3, Trial: true}},
	}
	avatars = session.Avatars{
		{ID: "Wayne_20240711", Public: true, Active: true, Default: true},
		{ID: "acme_private", Owner: "acme", Active: true},
		{ID: "retired", Public: true, Active: false},
	}
	secret = []byte("0123456789abcdef0123456789abcdef")
)

// node is one service node built from library parts: the Streaming API's
// server and the LiveAvatar handler over one Manager, on one mux.
type node struct {
	t   testing.TB
	mgr *session.Manager
	srv *server.Server
	la  *liveavatar.Handler
	mux *http.ServeMux
}

// nodeOptions adjust a node before it is built.
type nodeOptions struct {
	store    session.Store
	limiter  limits.Limiter
	capacity int
	socket   func(*liveavatar.Config)
	rate     func(acct session.Account) server.RateLimit
}

func newNode(t testing.TB, o nodeOptions) *node {
	t.Helper()
	lim := o.limiter
	if lim == nil {
		mem := limits.NewMemory(limits.MemoryConfig{Capacity: o.capacity})
		t.Cleanup(func() { mem.Close() })
		lim = mem
	}
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars, Store: o.store})
	require.NoError(t, err)
	srv, err := server.New(server.Config{Manager: mgr, Accounts: accounts, Avatars: avatars, Secret: secret, RateLimit: o.rate})
	require.NoError(t, err)
	cfg := liveavatar.Config{Manager: mgr, Accounts: accounts, Secret: secret, Allow: srv.Allow}
	if o.socket != nil {
		o.socket(&cfg)
	}
	la, err := liveavatar.New(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/v1/sessions", la)
	mux.Handle("/v1/sessions/", la)
	mux.Handle("/", srv)
	n := &node{t: t, mgr: mgr, srv: srv, la: la, mux: mux}
	t.Cleanup(n.close)
	return n
}

// close is a node's orderly shutdown: sessions closed (sockets hear it),
// then the surfaces.
func (n *node) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.mgr.Close(ctx)
	_ = n.la.Shutdown(ctx)
	_ = n.srv.Shutdown(ctx)
}

// leave takes a node on a shared store out without closing its sessions.
func (n *node) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.mgr.Leave(ctx)
	_ = n.la.Shutdown(ctx)
	_ = n.srv.Shutdown(ctx)
}

// answer is one HTTP answer.
type answer struct {
	Status int
	Header http.Header
	Body   string
}

// envelope decodes a LiveAvatar answer.
func (a answer) envelope(t testing.TB) (code int, data json.RawMessage, message string) {
	t.Helper()
	var e struct {
		Code    int             `json:"code"`
		Data    json.RawMessage `json:"data"`
		Message string          `json:"message"`
	}
	require.NoError(t, json.Unmarshal([]byte(a.Body), &e), "body %s", a.Body)
	return e.Code, e.Data, e.Message
}

// data decodes the data of a success envelope into v, checking code 1000
// and the status.
func (a answer) data(t testing.TB, status int, v any) {
	t.Helper()
	require.Equal(t, status, a.Status, "body %s", a.Body)
	code, data, _ := a.envelope(t)
	require.Equal(t, liveavatar.CodeSuccess, code, "body %s", a.Body)
	if v != nil {
		require.NoError(t, json.Unmarshal(data, v))
	}
}

// refused checks an error envelope's status, code and message.
func (a answer) refused(t testing.TB, status, code int, message string) {
	t.Helper()
	require.Equal(t, status, a.Status, "body %s", a.Body)
	got, data, msg := a.envelope(t)
	require.Equal(t, code, got, "body %s", a.Body)
	require.Equal(t, "null", string(data))
	if message != "" {
		require.Equal(t, message, msg)
	}
}

// client calls a node's handler in process or over HTTP (base non-empty).
type client struct {
	t    testing.TB
	h    http.Handler
	base string
}

func (n *node) client() client { return client{t: n.t, h: n.mux} }

// call makes one request; auth is "key-…" (X-API-KEY), a session token
// (Bearer) or "".
func (c client) call(method, path, auth string, body any) answer {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(c.t, err)
		rd = bytes.NewReader(raw)
	}
	var req *http.Request
	if c.base != "" {
		var err error
		req, err = http.NewRequest(method, c.base+path, rd)
		require.NoError(c.t, err)
	} else {
		req = httptest.NewRequest(method, path, rd)
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(auth, "key-"):
		req.Header.Set("X-API-KEY", auth)
	case auth != "":
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if c.base != "" {
		resp, err := http.DefaultClient.Do(req)
		require.NoError(c.t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(c.t, err)
		return answer{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	return answer{Status: rec.Code, Header: rec.Header(), Body: rec.Body.String()}
}

// token mints a LITE session token with key and returns the session id
// and token.
func (c client) token(key string, body map[string]any) (id, token string) {
	c.t.Helper()
	if body == nil {
		body = map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711"}
	}
	var out struct {
		SessionID    string `json:"session_id"`
		SessionToken string `json:"session_token"`
	}
	c.call("POST", liveavatar.PathToken, key, body).data(c.t, http.StatusOK, &out)
	return out.SessionID, out.SessionToken
}

type started struct {
	SessionID          string `json:"session_id"`
	WSURL              string `json:"ws_url"`
	MaxSessionDuration *int64 `json:"max_session_duration"`
}

func (c client) start(token string) started {
	c.t.Helper()
	var out started
	c.call("POST", liveavatar.PathStart, token, nil).data(c.t, http.StatusCreated, &out)
	return out
}

// listed is one entry of a list or get.
type listed struct {
	ID          string  `json:"id"`
	State       string  `json:"state"`
	CloseReason *string `json:"close_reason"`
	Duration    int64   `json:"duration"`
	Mode        *string `json:"mode"`
	IsSandbox   *bool   `json:"is_sandbox"`
	Source      *string `json:"source"`
}

func (c client) get(key, id string) listed {
	c.t.Helper()
	var out listed
	c.call("GET", "/v1/sessions/"+id, key, nil).data(c.t, http.StatusOK, &out)
	return out
}

// liteConn is a test's LITE socket.
type liteConn struct {
	t  testing.TB
	ws *websocket.Conn
}

// event is any message the server sends on a LITE socket.
type event struct {
	Type    string `json:"type"`
	State   string `json:"state"`
	Reason  string `json:"reason"`
	EventID string `json:"event_id"`
	Task    struct {
		ID string `json:"id"`
	} `json:"task"`
	Error struct {
		Type    string `json:"type"`
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	at time.Time
}

func dialLite(t testing.TB, wsURL string) (*liteConn, *http.Response, error) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { ws.Close() })
	return &liteConn{t: t, ws: ws}, resp, nil
}

func (c *liteConn) send(v any) {
	c.t.Helper()
	require.NoError(c.t, c.ws.WriteJSON(v))
}

// next reads the next event, failing after 10 s.
func (c *liteConn) next() event {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.ws.ReadMessage()
	require.NoError(c.t, err)
	var e event
	require.NoError(c.t, json.Unmarshal(data, &e), "event %s", data)
	e.at = time.Now()
	return e
}

// closed reads until the server closes the socket and returns its close
// code and reason.
func (c *liteConn) closed() (int, string) {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			require.ErrorAs(c.t, err, &ce, "after %s", data)
			return ce.Code, ce.Text
		}
	}
}

// pcm returns base64 of d of silent LITE audio.
func pcm(d time.Duration) string {
	return base64.StdEncoding.EncodeToString(make([]byte, int(d*liveavatar.BytesPerSecond/time.Second)&^1))
}

// httpServer serves n over loopback HTTP and returns its base URL.
func (n *node) httpServer() string {
	s := httptest.NewServer(n.mux)
	n.t.Cleanup(s.Close)
	return s.URL
}

func httptestRequest(method, path string, header map[string]string) *http.Request {
	r := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}
