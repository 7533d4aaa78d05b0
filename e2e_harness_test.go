package streamsession_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	ssservice "github.com/streamsession/streamsession/service"
	"github.com/streamsession/streamsession/session"
)

// The end-to-end harness: the whole service built from a JSON configuration
// with package service, served by an httptest.Server, driven by a plain
// net/http client and a gorilla/websocket client. Two networks: the real
// loopback one (newStack), and an in-memory one made of net.Pipe
// connections (newBubbleStack) for tests that run the whole stack inside a
// testing/synctest bubble, where goroutines blocked on real sockets would
// keep fake time from ever advancing.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Exact bodies of the wire contract (docs/wire.md, the seed's catalog).
const (
	bodyNull             = `{"code":100,"message":"success","data":null}`
	bodyUnauthorized     = `{"code":400112,"message":"Unauthorized"}`
	bodyMissing          = `{"code":40001,"message":"Missing required input parameters"}`
	bodyInvalid          = `{"code":400175,"message":"Invalid parameter"}`
	bodyNotFound         = `{"code":10006,"message":"Session not found"}`
	bodyNoResource       = `{"code":40051,"message":"Resource is not found"}`
	bodyConcurrent       = `{"code":10007,"message":"Concurrent limit reached"}`
	bodyAvatarNotFound   = `{"code":10012,"message":"Avatar not found"}`
	bodyAvatarNotAllowed = `{"code":10013,"message":"Avatar not allowed"}`
	bodyFull             = `{"code":10014,"message":"Session full"}`
	bodyTrial            = `{"code":10015,"message":"Trial API limit reached"}`
	bodyUnavailable      = `{"code":400558,"message":"API connection error"}`
	bodyEmptyList        = `{"code":100,"message":"success","data":{"sessions":[]}}`

	eventInvalid = `{"type":"error","event_type":"error","code":400175,"message":"Invalid parameter"}`
)

// wrongState is the 400 body of a call the session's state refuses, by the
// state the session is in.
var wrongState = map[fsm.State]string{
	fsm.New:        `{"code":10001,"message":"Session state wrong: new"}`,
	fsm.Connecting: `{"code":10002,"message":"Session state wrong: connecting"}`,
	fsm.Connected:  `{"code":10003,"message":"Session state wrong: connected"}`,
	fsm.Closing:    `{"code":10004,"message":"Session state wrong: closing"}`,
	fsm.Closed:     `{"code":10005,"message":"Session state wrong: closed"}`,
}

func stateEvent(state string) string {
	return `{"type":"session.state_updated","event_type":"session.state_updated","state":"` + state + `"}`
}

// endEvent is the session.state_updated of a closing or closed session,
// with the reason it ends.
func endEvent(state string, reason session.Reason) string {
	return `{"type":"session.state_updated","event_type":"session.state_updated","state":"` + state + `","reason":"` + reason.String() + `"}`
}

func errorEvent(body string) string {
	return `{"type":"error","event_type":"error",` + strings.TrimPrefix(body, "{")
}

var (
	sessionIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	taskIDPattern    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	tokenPattern     = regexp.MustCompile(`^\{"error":null,"data":\{"token":"([^"]+)"\}\}$`)
)

// stack is one running service and its clients, seen from one test: its
// helpers report to t. on gives the view of a subtest.
type stack struct {
	t *testing.T
	*service
}

// on returns the stack with its helpers reporting to t (a subtest).
func (st *stack) on(t *testing.T) *stack { return &stack{t: t, service: st.service} }

// service is what the views of one stack share.
type service struct {
	svc    *ssservice.Node
	http   *httptest.Server
	tr     *http.Transport
	client *http.Client
	dialer websocket.Dialer
	// bubble is true when the stack runs inside a synctest bubble on the
	// in-memory network.
	bubble bool
	// slots reads the slots held in the limiter.
	slots func() int

	opened chan realtime.SocketInfo
	closed chan realtime.SocketInfo

	shutdownOnce sync.Once
	shutdownErr  error

	mu      sync.Mutex
	sockets []*wsClient
}

// stackOption adjusts the service options before ssservice.New.
type stackOption func(*ssservice.Options)

// newStack parses configJSON, builds the service and serves it on the
// loopback network.
func newStack(t *testing.T, configJSON string, opts ...stackOption) *stack {
	t.Helper()
	st := buildService(t, configJSON, opts)
	st.http = httptest.NewServer(st.svc.Server)
	st.tr = &http.Transport{}
	st.client = &http.Client{Transport: st.tr}
	st.dialer = websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	t.Cleanup(st.close)
	return st
}

// newBubbleStack is newStack on an in-memory network; call it inside a
// synctest bubble so that the whole stack (manager loops, limiter, HTTP
// server, sockets) runs on the bubble's fake clock.
func newBubbleStack(t *testing.T, configJSON string, opts ...stackOption) *stack {
	t.Helper()
	st := buildService(t, configJSON, opts)
	st.bubble = true
	mem := newMemNet()
	st.http = &httptest.Server{Listener: mem, Config: &http.Server{Handler: st.svc.Server}}
	st.http.Start()
	st.tr = &http.Transport{DialContext: mem.DialContext}
	st.client = &http.Client{Transport: st.tr}
	st.dialer = websocket.Dialer{NetDialContext: mem.DialContext, HandshakeTimeout: 5 * time.Second}
	t.Cleanup(st.close)
	return st
}

func buildService(t *testing.T, configJSON string, opts []stackOption) *stack {
	t.Helper()
	cfg, err := ssservice.Parse([]byte(configJSON))
	require.NoError(t, err)
	st := &stack{t: t, service: &service{
		opened: make(chan realtime.SocketInfo, 1024),
		closed: make(chan realtime.SocketInfo, 1024),
	}}
	o := ssservice.Options{Server: server.Config{Hooks: server.Hooks{
		SocketOpened: func(i realtime.SocketInfo) { nonBlockingSend(st.opened, i) },
		SocketClosed: func(i realtime.SocketInfo) { nonBlockingSend(st.closed, i) },
	}}}
	for _, f := range opts {
		f(&o)
	}
	st.svc, err = ssservice.New(context.Background(), cfg, o)
	require.NoError(t, err)
	st.slots = inUse(st.svc.Limiter)
	require.NotNil(t, st.slots, "the limiter tells how many slots it holds")
	return st
}

func nonBlockingSend[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// inUse returns the slot counter of the in-memory limiter (or of the one a
// gateLimiter wraps), nil when it has none.
func inUse(l limits.Limiter) func() int {
	switch l := l.(type) {
	case *limits.Memory:
		return l.InUse
	case *gateLimiter:
		return inUse(l.Limiter)
	}
	return nil
}

// shutdown ends the service as a program does on SIGTERM: every session
// closes, every slot is freed, the sockets are closed. The HTTP server keeps
// serving, so that a test can look at what it answers afterwards.
func (st *stack) shutdown() error {
	st.shutdownOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.shutdownErr = st.svc.Shutdown(ctx)
	})
	return st.shutdownErr
}

func (st *stack) close() {
	if g, ok := st.svc.Limiter.(*gateLimiter); ok {
		g.letAll()
	}
	st.http.Close()
	assert.NoError(st.t, st.shutdown())
	st.tr.CloseIdleConnections()
	st.mu.Lock()
	sockets := st.sockets
	st.mu.Unlock()
	for _, c := range sockets {
		c.conn.Close()
		<-c.done
	}
}

// reply is an HTTP answer with its body read.
type reply struct {
	status int
	header http.Header
	body   string
}

func apiKey(key string) http.Header   { return http.Header{"X-Api-Key": {key}} }
func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }
func idBody(id string) string         { return `{"session_id":"` + id + `"}` }
func taskBody(id, text string) string { return `{"session_id":"` + id + `","text":"` + text + `"}` }
func iceBody(id string) string {
	return `{"session_id":"` + id + `","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}}`
}
func unknownID() string          { return "0123456789abcdef0123456789abcdef" }
func (st *stack) host() string   { return strings.TrimPrefix(st.http.URL, "http://") }
func (st *stack) wsBase() string { return "ws://" + st.host() + server.PathRealtime }
func (st *stack) state(account, id string) fsm.State {
	info, err := st.svc.Manager.Get(context.Background(), account, id)
	if err != nil {
		return fsm.Unknown
	}
	return info.State
}

// do sends one request; an empty body sends none. target is a path with an
// optional raw query, sent as it is.
func (st *stack) do(method, target string, h http.Header, body string) reply {
	st.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, st.http.URL, rd)
	require.NoError(st.t, err)
	path, query, _ := strings.Cut(target, "?")
	req.URL.Path, req.URL.RawPath, req.URL.RawQuery = path, "", query
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := st.client.Do(req)
	require.NoError(st.t, err, "%s %s", method, target)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(st.t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

func (st *stack) post(h http.Header, path, body string) reply {
	st.t.Helper()
	return st.do(http.MethodPost, path, h, body)
}

func (st *stack) get(h http.Header, path string) reply {
	st.t.Helper()
	return st.do(http.MethodGet, path, h, "")
}

// want asserts an exact answer: status, JSON content type and body bytes.
// A failure must also read, the way a client reads it, as a row of the
// catalog with the catalog's message.
func want(t *testing.T, status int, body string, r reply, msgAndArgs ...any) {
	t.Helper()
	assert.Equal(t, status, r.status, msgAndArgs...)
	assert.Equal(t, body, r.body, msgAndArgs...)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"), msgAndArgs...)
	if r.status >= 400 {
		e := typed(r)
		row, ok := sserrors.Lookup(e.Code)
		if assert.True(t, ok, "code %d is in the catalog", e.Code) {
			assert.Equal(t, row.Message, e.Message, msgAndArgs...)
		}
	}
}

// typed reads a failure as a client does, with sserrors.FromResponse.
func typed(r reply) *sserrors.Error {
	return sserrors.FromResponse(&http.Response{StatusCode: r.status, Header: r.header, Body: io.NopCloser(strings.NewReader(r.body))})
}

// data decodes the data of a success envelope into v.
func data(t *testing.T, r reply, v any) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, r.body)
	var env struct {
		Code    *int            `json:"code"`
		Message *string         `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(r.body)))
	require.NoError(t, dec.Decode(&env), r.body)
	require.NotNil(t, env.Code, r.body)
	require.Equal(t, 100, *env.Code, r.body)
	require.NotNil(t, env.Message, r.body)
	require.Equal(t, "success", *env.Message, r.body)
	if v != nil {
		dec := json.NewDecoder(bytes.NewReader(env.Data))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(v), r.body)
	}
}

// newData is the data of streaming.new.
type newData struct {
	SessionID            string `json:"session_id"`
	AccessToken          string `json:"access_token"`
	RealtimeEndpoint     string `json:"realtime_endpoint"`
	URL                  string `json:"url"`
	IsPaid               bool   `json:"is_paid"`
	SessionDurationLimit int64  `json:"session_duration_limit"`
}

type listData struct {
	Sessions []listedSession `json:"sessions"`
}

type listedSession struct {
	SessionID string `json:"session_id"`
	Status    string `json:"status"`
	CreatedAt int64  `json:"created_at"`
}

type taskData struct {
	TaskID     string `json:"task_id"`
	DurationMS int64  `json:"duration_ms"`
}

// mintToken calls streaming.create_token with key and returns the token.
func (st *stack) mintToken(key string) string {
	st.t.Helper()
	r := st.post(apiKey(key), server.PathCreateToken, "{}")
	require.Equal(st.t, http.StatusOK, r.status, r.body)
	m := tokenPattern.FindStringSubmatch(r.body)
	require.NotNil(st.t, m, r.body)
	return m[1]
}

// newSession calls streaming.new and requires success.
func (st *stack) newSession(h http.Header, body string) newData {
	st.t.Helper()
	var d newData
	data(st.t, st.post(h, server.PathNew, body), &d)
	require.Regexp(st.t, sessionIDPattern, d.SessionID)
	return d
}

// startSession calls streaming.start and requires success.
func (st *stack) startSession(h http.Header, id string) {
	st.t.Helper()
	want(st.t, http.StatusOK, bodyNull, st.post(h, server.PathStart, idBody(id)))
}

// connected creates, starts and joins a session: its socket has received
// the connected state.
func (st *stack) connected(h http.Header) (newData, *wsClient) {
	st.t.Helper()
	d := st.newSession(h, "{}")
	st.startSession(h, d.SessionID)
	ws := st.open(d.RealtimeEndpoint, nil)
	ws.expect(stateEvent("connected"))
	return d, ws
}

// list returns the account's listed sessions, id → status.
func (st *stack) list(h http.Header) map[string]string {
	st.t.Helper()
	var l listData
	data(st.t, st.get(h, server.PathList), &l)
	out := make(map[string]string, len(l.Sessions))
	for _, s := range l.Sessions {
		out[s.SessionID] = s.Status
	}
	return out
}

// wsClient is a realtime socket with a goroutine that reads it, as a real
// client does (gorilla answers pings and close frames only while reading).
type wsClient struct {
	st *stack
	*wsConn
}

// on returns the socket with its helpers reporting to t (a subtest).
func (c *wsClient) on(t *testing.T) *wsClient { return &wsClient{st: c.st.on(t), wsConn: c.wsConn} }

// wsConn is what the views of one socket share.
type wsConn struct {
	conn *websocket.Conn
	msgs chan string
	done chan struct{}
	err  error // why reading ended; set before done is closed
}

// dial opens the realtime socket at url.
func (st *stack) dial(url string, h http.Header) (*wsClient, *http.Response, error) {
	conn, resp, err := st.dialer.Dial(url, h)
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{st: st, wsConn: &wsConn{conn: conn, msgs: make(chan string, 1024), done: make(chan struct{})}}
	st.mu.Lock()
	st.sockets = append(st.sockets, c)
	st.mu.Unlock()
	go c.read()
	return c, resp, nil
}

// open dials url and requires the upgrade.
func (st *stack) open(url string, h http.Header) *wsClient {
	st.t.Helper()
	c, resp, err := st.dial(url, h)
	require.NoError(st.t, err)
	require.Equal(st.t, http.StatusSwitchingProtocols, resp.StatusCode)
	return c
}

// refused dials url and requires a refusal with the exact JSON error, never
// a 101.
func (st *stack) refused(url string, h http.Header, status int, body string, msgAndArgs ...any) {
	st.t.Helper()
	c, resp, err := st.dial(url, h)
	if c != nil {
		c.conn.Close()
	}
	require.ErrorIs(st.t, err, websocket.ErrBadHandshake, msgAndArgs...)
	require.NotNil(st.t, resp, msgAndArgs...)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(st.t, err)
	assert.Equal(st.t, status, resp.StatusCode, msgAndArgs...)
	assert.Equal(st.t, body, string(got), msgAndArgs...)
	assert.Equal(st.t, "application/json", resp.Header.Get("Content-Type"), msgAndArgs...)
}

func (c *wsConn) read() {
	defer close(c.done)
	for {
		typ, data, err := c.conn.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		if typ != websocket.TextMessage {
			data = append([]byte("binary:"), data...)
		}
		c.msgs <- string(data)
	}
}

// waitReal bounds every wait for the server on the loopback network.
const waitReal = 10 * time.Second

// next returns the next message. In a bubble it first lets every goroutine
// settle (no fake time passes) and reports false when nothing is there; on
// the loopback network it waits up to waitReal.
func (c *wsClient) next() (string, bool) {
	if c.st.bubble {
		synctest.Wait()
		select {
		case m := <-c.msgs:
			return m, true
		default:
			return "", false
		}
	}
	timeout := time.NewTimer(waitReal)
	defer timeout.Stop()
	select {
	case m := <-c.msgs:
		return m, true
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m, true
		default:
			return "", false
		}
	case <-timeout.C:
		return "", false
	}
}

// expect requires the next message to be exactly msg.
func (c *wsClient) expect(msg string) {
	c.st.t.Helper()
	got, ok := c.next()
	require.True(c.st.t, ok, "no message; want %s (reading ended with %v)", msg, c.endErr())
	require.Equal(c.st.t, msg, got)
}

// message decodes the next message.
func (c *wsClient) message() realtime.ServerMessage {
	c.st.t.Helper()
	got, ok := c.next()
	require.True(c.st.t, ok, "no message (reading ended with %v)", c.endErr())
	var m realtime.ServerMessage
	require.NoError(c.st.t, json.Unmarshal([]byte(got), &m), got)
	return m
}

// quiet requires that no message is waiting (in a bubble: after every
// goroutine has settled).
func (c *wsClient) quiet() {
	c.st.t.Helper()
	if c.st.bubble {
		synctest.Wait()
	}
	select {
	case m := <-c.msgs:
		c.st.t.Fatalf("unexpected message %s", m)
	default:
	}
}

func (c *wsConn) endErr() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

func (c *wsClient) send(msg string) {
	c.st.t.Helper()
	require.NoError(c.st.t, c.conn.WriteMessage(websocket.TextMessage, []byte(msg)))
}

// closeError requires that the server ends the socket with a close frame,
// with no message before it, and returns the frame.
func (c *wsClient) closeError() *websocket.CloseError {
	c.st.t.Helper()
	if c.st.bubble {
		synctest.Wait()
	} else {
		select {
		case <-c.done:
		case <-time.After(waitReal):
		}
	}
	select {
	case <-c.done:
	default:
		c.st.t.Fatal("the socket is still open")
	}
	c.quiet()
	var ce *websocket.CloseError
	require.ErrorAs(c.st.t, c.err, &ce)
	return ce
}

// wantClose requires a close frame with code and text.
func (c *wsClient) wantClose(code int, text string) {
	c.st.t.Helper()
	ce := c.closeError()
	assert.Equal(c.st.t, code, ce.Code)
	assert.Equal(c.st.t, text, ce.Text)
}

func withoutDate(h http.Header) http.Header {
	h = h.Clone()
	h.Del("Date")
	return h
}

// burst sends n concurrent streaming.new, the i-th with headers h(i), and
// returns the replies.
func (st *stack) burst(n int, h func(i int) http.Header) []reply {
	out := make([]reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = st.post(h(i), server.PathNew, "{}")
		})
	}
	close(start)
	wg.Wait()
	return out
}

// waitAllButOne waits until every socket but one has ended and returns the
// one left open.
func waitAllButOne(t *testing.T, sockets []*wsClient) *wsClient {
	t.Helper()
	deadline := time.After(waitReal)
	for {
		var open []*wsClient
		for _, c := range sockets {
			require.NotNil(t, c)
			select {
			case <-c.done:
			default:
				open = append(open, c)
			}
		}
		require.NotEmpty(t, open, "every socket was closed")
		if len(open) == 1 {
			return open[0]
		}
		select {
		case <-open[0].done:
		case <-open[len(open)-1].done:
		case <-deadline:
			t.Fatalf("%d sockets of one session stay open", len(open))
		}
	}
}

// sleepUntil advances fake time to at and lets every goroutine settle.
func sleepUntil(t *testing.T, at time.Time) {
	t.Helper()
	d := time.Until(at)
	require.GreaterOrEqual(t, d, time.Duration(0), "the deadline %v has passed", at)
	time.Sleep(d)
	synctest.Wait()
}

func (st *stack) info(account, id string) session.Info {
	st.t.Helper()
	info, err := st.svc.Manager.Get(context.Background(), account, id)
	require.NoError(st.t, err)
	return info
}

// wantClosedBy asserts that the session is closed, for reason, and that its
// socket (if any) heard closing and closed and was closed.
func (st *stack) wantClosedBy(account, id string, reason session.Reason, ws *wsClient) {
	st.t.Helper()
	info := st.info(account, id)
	assert.Equal(st.t, fsm.Closed, info.State)
	assert.Equal(st.t, reason, info.Reason)
	if ws != nil {
		ws.expect(endEvent("closing", reason))
		ws.expect(endEvent("closed", reason))
		ws.wantClose(websocket.CloseNormalClosure, "session closed")
	}
}

// memNet is an in-memory network for a synctest bubble: a net.Listener
// whose connections are net.Pipe ends handed over by DialContext. Goroutines
// blocked on it are durably blocked, so fake time advances.
type memNet struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newMemNet() *memNet {
	return &memNet{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (n *memNet) Accept() (net.Conn, error) {
	select {
	case c := <-n.conns:
		return c, nil
	case <-n.done:
		return nil, net.ErrClosed
	}
}

func (n *memNet) Close() error {
	n.once.Do(func() { close(n.done) })
	return nil
}

func (n *memNet) Addr() net.Addr { return memAddr{} }

// DialContext connects to the listener, whatever the address.
func (n *memNet) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	client, srv := net.Pipe()
	select {
	case n.conns <- srv:
		return client, nil
	case <-n.done:
	case <-ctx.Done():
	}
	client.Close()
	srv.Close()
	return nil, &net.OpError{Op: "dial", Net: "mem", Err: net.ErrClosed}
}

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "streamsession.test:80" }

// gateLimiter wraps a Limiter and can hold the Release of chosen sessions,
// which keeps them in closing: the manager moves a session to closing, then
// releases its slot, then moves it to closed.
//
// While down is set it fails as an unreachable backend does (Acquire,
// Started and Renew return limits.ErrUnavailable); Release still works.
type gateLimiter struct {
	limits.Limiter
	down atomic.Bool

	mu      sync.Mutex
	held    map[string]func() // session id → wait for its release
	lets    []func()
	entered chan string
}

func newGateLimiter(inner limits.Limiter) *gateLimiter {
	return &gateLimiter{Limiter: inner, held: make(map[string]func()), entered: make(chan string, 16)}
}

// hold makes the next Release of id wait until the returned function (or
// letAll) is called.
func (g *gateLimiter) hold(id string) (let func()) {
	ch := make(chan struct{})
	var once sync.Once
	let = func() { once.Do(func() { close(ch) }) }
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held[id] = func() { <-ch }
	g.lets = append(g.lets, let)
	return let
}

// letAll lets every held Release go, so that a failed test still shuts
// down.
func (g *gateLimiter) letAll() {
	g.mu.Lock()
	lets := g.lets
	g.mu.Unlock()
	for _, let := range lets {
		let()
	}
}

var errBackendDown = limits.ErrUnavailable.WithCause(errors.New("e2e: limiter backend down"))

func (g *gateLimiter) Acquire(ctx context.Context, req limits.Request) (limits.Decision, error) {
	if g.down.Load() {
		return limits.Decision{}, errBackendDown
	}
	return g.Limiter.Acquire(ctx, req)
}

func (g *gateLimiter) Started(ctx context.Context, lease limits.Lease) error {
	if g.down.Load() {
		return errBackendDown
	}
	return g.Limiter.Started(ctx, lease)
}

func (g *gateLimiter) Renew(ctx context.Context, lease limits.Lease) (limits.Lease, error) {
	if g.down.Load() {
		return limits.Lease{}, errBackendDown
	}
	return g.Limiter.Renew(ctx, lease)
}

func (g *gateLimiter) Release(ctx context.Context, lease limits.Lease) error {
	g.mu.Lock()
	wait := g.held[lease.SessionID]
	delete(g.held, lease.SessionID)
	g.mu.Unlock()
	if wait != nil {
		g.entered <- lease.SessionID
		wait()
	}
	return g.Limiter.Release(ctx, lease)
}

// withGate runs the service on a gateLimiter over the in-memory limiter of
// capacity sessions. The limiter is closed when the test ends.
func withGate(t *testing.T, capacity int, g **gateLimiter) stackOption {
	inner := limits.NewMemory(limits.MemoryConfig{Capacity: capacity})
	*g = newGateLimiter(inner)
	t.Cleanup(func() { _ = inner.Close() })
	return func(o *ssservice.Options) { o.Limiter = *g }
}
