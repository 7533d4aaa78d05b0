// Package client is a typed Go client of the Streaming API that
// examples/streaming serves (HeyGen's Streaming Avatar API, same wire).
//
// A [Client] calls the API with an API key ([WithAPIKey]) or a bearer token
// of streaming.create_token ([WithToken]); [Client.NewSession] returns a
// [Session] that knows its state and drives the session's commands and
// realtime socket:
//
//	c, _ := client.New("http://127.0.0.1:8080", client.WithAPIKey(key))
//	s, _ := c.NewSession(ctx, client.NewSessionRequest{Quality: "low"})
//	_ = s.Start(ctx)
//	events, _ := s.Connect(ctx)  // session.state_updated "connected" first
//	res, _ := s.Task(ctx, "Hello")
//	_ = s.Stop(ctx)
//
// # The guard
//
// Every command is checked, before any network call, against the session's
// last known state (the command policy of package fsm), and refused with
// exactly the error the server would answer: the shared 10001–10005
// *errors.Error naming the state. The state is learned from every answer
// (a success, or a 1000x refusal naming the state) and every socket event.
// [WithoutGuard] sends every command and lets the server decide.
//
// # Errors
//
// Every answer that is not a success is an *errors.Error (package
// streamsession/errors): errors.As gives its Code, HTTP Status and
// RetryAfter, and errors.Is matches it against the catalog's Err* values. A
// request that got no answer (connection refused or reset, a timeout) is a
// *[TransportError] wrapping the cause. A cancelled or expired ctx is
// returned as ctx.Err(), wrapped.
//
// # Retries
//
// A refusal that [errors.Retryable] calls transient (429 with 10014 or
// 400140, 503 with 400558, and the other transient rows) is sent again, at
// most [WithMaxRetries] times (default 2): after its Retry-After when the
// server sent one (a Retry-After longer than the maximum delay, 30 s by
// default, is not waited for: the error is returned), otherwise after a
// jittered exponential backoff (250 ms doubling, capped by the maximum
// delay). No wait runs past ctx's deadline: when it would, the last error is
// returned at once. State errors, 10006, 10007, 10015 and every other 4xx
// are never retried. A request that got no answer, or a transient 5xx
// refusal (after which the work may have been done), is retried only when
// sending it twice is harmless: streaming.new (it carries an
// Idempotency-Key of its own, the same on every retry, so a retry after a
// lost reply returns the session the lost reply named), the lists and
// keep_alive; the other calls (a task above all, which would be spoken
// twice) retry only a 429 or a 408, which the server decides before doing
// anything.
//
// # Concurrency
//
// A Client and a Session are safe for concurrent use by multiple
// goroutines. A Session's socket goroutine ends when the event channel
// closes; [Session.Stop] and [Session.Close] wait for it.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// API paths (the same as package server's).
const (
	pathCreateToken    = "/v1/streaming.create_token"
	pathNew            = "/v1/streaming.new"
	pathStart          = "/v1/streaming.start"
	pathTask           = "/v1/streaming.task"
	pathInterrupt      = "/v1/streaming.interrupt"
	pathStartListening = "/v1/streaming.start_listening"
	pathStopListening  = "/v1/streaming.stop_listening"
	pathKeepAlive      = "/v1/streaming.keep_alive"
	pathStop           = "/v1/streaming.stop"
	pathList           = "/v1/streaming.list"
	pathAvatarList     = "/v1/streaming/avatar.list"
)

// Defaults of the options.
const (
	// DefaultMaxRetries is how many times a transient refusal is retried.
	DefaultMaxRetries = 2
	// DefaultBaseDelay is the first backoff delay (without Retry-After).
	DefaultBaseDelay = 250 * time.Millisecond
	// DefaultMaxDelay caps a backoff delay, and is the longest Retry-After
	// waited for.
	DefaultMaxDelay = 30 * time.Second
)

// Client calls one Streaming API server. Build it with [New]; it is
// immutable afterwards and safe for concurrent use by multiple goroutines.
type Client struct {
	base       *url.URL
	apiKey     string
	token      string
	http       *http.Client
	dialer     *websocket.Dialer
	maxRetries int
	baseDelay  time.Duration
	maxDelay   time.Duration
	guard      bool
	reconnect  backoff
}

// Option configures a Client in [New].
type Option func(*Client)

// WithAPIKey authenticates every call with X-Api-Key (a server caller).
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithToken authenticates every call with Authorization: Bearer (a token of
// streaming.create_token: it creates one session, then authorises that
// session's calls).
func WithToken(bearer string) Option { return func(c *Client) { c.token = bearer } }

// WithHTTPClient sends every API call through hc. The default is a client
// with a 30 s timeout on the default transport.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithMaxRetries sets how many times a transient refusal is retried
// (default DefaultMaxRetries; 0 never retries; a negative n is refused by
// New).
func WithMaxRetries(n int) Option { return func(c *Client) { c.maxRetries = n } }

// WithBackoff sets the first backoff delay and the cap of every delay
// (default DefaultBaseDelay and DefaultMaxDelay). The cap also bounds the
// Retry-After the client waits for.
func WithBackoff(base, max time.Duration) Option {
	return func(c *Client) { c.baseDelay, c.maxDelay = base, max }
}

// WithoutGuard turns the client-side guard off: every command is sent and
// the server decides.
func WithoutGuard() Option { return func(c *Client) { c.guard = false } }

// WithDialer opens realtime sockets with d. The default has a 10 s
// handshake timeout and the environment's proxy.
func WithDialer(d *websocket.Dialer) Option { return func(c *Client) { c.dialer = d } }

// WithReconnectBackoff sets the delays between reconnections of a realtime
// socket: first, doubling with jitter up to max (default 250 ms and 5 s).
func WithReconnectBackoff(first, max time.Duration) Option {
	return func(c *Client) { c.reconnect = backoff{base: first, max: max} }
}

// New returns a Client of the server at baseURL ("https://api.example.com",
// a path prefix allowed). Exactly one of WithAPIKey and WithToken is
// required. A bad URL or option is a 400175 *errors.Error. New makes no
// network call.
func New(baseURL string, opts ...Option) (*Client, error) {
	c := &Client{
		maxRetries: DefaultMaxRetries, baseDelay: DefaultBaseDelay, maxDelay: DefaultMaxDelay,
		guard: true, reconnect: backoff{base: 250 * time.Millisecond, max: 5 * time.Second},
	}
	for _, o := range opts {
		o(c)
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, invalid("base URL %q is not an absolute http or https URL", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c.base = u
	switch {
	case c.apiKey == "" && c.token == "":
		return nil, invalid("WithAPIKey or WithToken is required")
	case c.apiKey != "" && c.token != "":
		return nil, invalid("WithAPIKey and WithToken exclude each other")
	case c.maxRetries < 0:
		return nil, invalid("WithMaxRetries(%d): negative", c.maxRetries)
	case c.baseDelay <= 0 || c.maxDelay < c.baseDelay:
		return nil, invalid("WithBackoff(%v, %v): want 0 < base <= max", c.baseDelay, c.maxDelay)
	case c.reconnect.base <= 0 || c.reconnect.max < c.reconnect.base:
		return nil, invalid("WithReconnectBackoff(%v, %v): want 0 < first <= max", c.reconnect.base, c.reconnect.max)
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	if c.dialer == nil {
		c.dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 10 * time.Second}
	}
	return c, nil
}

func invalid(format string, args ...any) error {
	return sserrors.ErrInvalidParameter.WithCause(fmt.Errorf("client: "+format, args...))
}

// TransportError is a request that got no answer from the server: the
// connection failed, was reset, or timed out. Op names the request
// ("POST /v1/streaming.new"). It is a plain value.
type TransportError struct {
	Op  string
	Err error
}

// Error returns the request and the cause.
func (e *TransportError) Error() string { return "client: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// call is one API request.
type call struct {
	method, path string
	body         any
	// idempotencyKey, when set, is sent as Idempotency-Key.
	idempotencyKey string
	// resend: sending it twice is harmless, so a request that got no answer
	// is retried.
	resend bool
}

// do sends c, retrying as the package doc says, and decodes a success's
// data into out (nil: ignored).
func (c *Client) do(ctx context.Context, cl call, out any) error {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return invalid("encode %s: %v", cl.path, err)
		}
	}
	op := cl.method + " " + cl.path
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, cl, op, payload, out)
		if err == nil {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("client: %s: %w", op, ctxErr)
		}
		if attempt >= c.maxRetries {
			return err
		}
		var delay time.Duration
		var te *TransportError
		if errors.As(err, &te) {
			if !cl.resend {
				return err
			}
			delay = c.backoffDelay(attempt)
		} else {
			retry, _ := sserrors.Retryable(err)
			if !retry || (!cl.resend && !refusedBeforeWork(err)) {
				return err
			}
			delay = c.backoffDelay(attempt)
			if e, ok := sserrors.As(err); ok && e.RetryAfter > 0 {
				if e.RetryAfter > c.maxDelay {
					return err
				}
				delay = e.RetryAfter
			}
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay {
			return err
		}
		if werr := sleep(ctx, delay); werr != nil {
			return fmt.Errorf("client: %s: %w", op, werr)
		}
	}
}

// refusedBeforeWork reports whether a refusal proves that the server did
// nothing: a 429 (rate limit, capacity) or a 408 (the body came too slowly)
// is decided before the call's work. A 5xx is not: the server, or a proxy in
// front of it, may have done the work before it failed (a task whose relay
// publication timed out may still be spoken), so a call that is not safe to
// send twice is not retried after one.
func refusedBeforeWork(err error) bool {
	e, ok := sserrors.As(err)
	return ok && (e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout)
}

// backoffDelay is the attempt's delay without a Retry-After: a random
// delay between half and all of an exponential ceiling.
func (c *Client) backoffDelay(attempt int) time.Duration {
	return backoff{base: c.baseDelay, max: c.maxDelay}.delay(attempt)
}

// backoff is a capped, jittered exponential backoff.
type backoff struct{ base, max time.Duration }

// delay returns a delay in [ceil/2, ceil], ceil = min(base·2^attempt, max).
func (b backoff) delay(attempt int) time.Duration {
	ceil := b.base
	for range min(attempt, 30) {
		if ceil >= b.max/2 {
			ceil = b.max
			break
		}
		ceil *= 2
	}
	ceil = min(ceil, b.max)
	half := ceil / 2
	return half + time.Duration(mrand.Int64N(int64(ceil-half)+1))
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// once sends one request.
func (c *Client) once(ctx context.Context, cl call, op string, payload []byte, out any) error {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.base.String()+cl.path, body)
	if err != nil {
		return invalid("%s: %v", op, err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.apiKey != "" {
		req.Header.Set("X-Api-Key", c.apiKey)
	} else {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if cl.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", cl.idempotencyKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &TransportError{Op: op, Err: err}
	}
	defer resp.Body.Close()
	err = sserrors.DecodeResponse(resp, out)
	if err != nil && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		var se *sserrors.Error
		if errors.As(err, &se) && se.Code == sserrors.CodeInternalServerError && errors.Unwrap(se) != nil {
			// The body of a 2xx was cut or is not an envelope: no answer.
			return &TransportError{Op: op, Err: err}
		}
	}
	return err
}

// CreateToken mints a bearer token for the key's account
// (streaming.create_token). It needs WithAPIKey: with a token the server
// answers 401/400112. It is not retried after a request that got no
// answer (each call mints a token).
func (c *Client) CreateToken(ctx context.Context) (string, error) {
	var data struct {
		Token string `json:"token"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, path: pathCreateToken, body: struct{}{}}, &data); err != nil {
		return "", err
	}
	return data.Token, nil
}

// SessionInfo is one open session of streaming.list. It is a plain value.
type SessionInfo struct {
	ID        string
	State     fsm.State
	CreatedAt time.Time
}

// List returns the account's open sessions (new, connecting, connected),
// oldest first.
func (c *Client) List(ctx context.Context) ([]SessionInfo, error) {
	var data struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
			Status    string `json:"status"`
			CreatedAt int64  `json:"created_at"`
		} `json:"sessions"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: pathList, resend: true}, &data); err != nil {
		return nil, err
	}
	out := make([]SessionInfo, 0, len(data.Sessions))
	for _, s := range data.Sessions {
		st, _ := fsm.ParseState(s.Status) // an unknown status is Unknown
		out = append(out, SessionInfo{ID: s.SessionID, State: st, CreatedAt: time.Unix(s.CreatedAt, 0)})
	}
	return out, nil
}

// Avatar is one avatar of streaming/avatar.list. It is a plain value.
type Avatar struct {
	ID string
	// DefaultVoice is empty when the avatar has none.
	DefaultVoice string
	Public       bool
	// Active is false for an INACTIVE avatar, which streaming.new refuses.
	Active bool
}

// Avatars returns the avatars the account may use.
func (c *Client) Avatars(ctx context.Context) ([]Avatar, error) {
	var data []struct {
		AvatarID     string  `json:"avatar_id"`
		DefaultVoice *string `json:"default_voice"`
		IsPublic     bool    `json:"is_public"`
		Status       string  `json:"status"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: pathAvatarList, resend: true}, &data); err != nil {
		return nil, err
	}
	out := make([]Avatar, 0, len(data))
	for _, a := range data {
		av := Avatar{ID: a.AvatarID, Public: a.IsPublic, Active: strings.EqualFold(a.Status, "ACTIVE")}
		if a.DefaultVoice != nil {
			av.DefaultVoice = *a.DefaultVoice
		}
		out = append(out, av)
	}
	return out, nil
}

// NewSessionRequest is the body of streaming.new. Zero fields are not
// sent, so the server takes its defaults. It is a plain value.
type NewSessionRequest struct {
	// AvatarID names the avatar; empty is the default avatar.
	AvatarID string
	// AvatarName is the legacy name of AvatarID, used when AvatarID is
	// empty.
	AvatarName string
	// Quality is "high", "medium" or "low".
	Quality string
	// Voice sets the avatar's voice.
	Voice *Voice
	// VideoEncoding is "H264" or "VP8".
	VideoEncoding   string
	KnowledgeBase   string
	KnowledgeBaseID string
	// Version is the API version ("v2").
	Version string
	// DisableIdleTimeout turns the idle timer off.
	DisableIdleTimeout bool
	// ActivityIdleTimeout closes a connected session without activity for
	// that long: whole seconds from 30 s to 3600 s; zero takes the server's
	// default (120 s). Anything else is refused locally with 400175.
	ActivityIdleTimeout time.Duration
	// IdempotencyKey is sent as Idempotency-Key; empty gives a random key
	// of this call (the same on each of its retries). Reuse a key of your
	// own to make calls of your own idempotent across restarts.
	IdempotencyKey string
}

// Voice is the voice of NewSessionRequest. It is a plain value.
type Voice struct {
	VoiceID string
	// Rate is the speaking rate, 0.5 to 1.5; zero is not sent.
	Rate float64
	// Emotion is "excited", "serious", "friendly", "soothing" or
	// "broadcaster".
	Emotion string
}

type newBody struct {
	AvatarID            string     `json:"avatar_id,omitempty"`
	AvatarName          string     `json:"avatar_name,omitempty"`
	Quality             string     `json:"quality,omitempty"`
	Voice               *voiceBody `json:"voice,omitempty"`
	VideoEncoding       string     `json:"video_encoding,omitempty"`
	KnowledgeBase       string     `json:"knowledge_base,omitempty"`
	KnowledgeBaseID     string     `json:"knowledge_base_id,omitempty"`
	Version             string     `json:"version,omitempty"`
	DisableIdleTimeout  bool       `json:"disable_idle_timeout,omitempty"`
	ActivityIdleTimeout *int64     `json:"activity_idle_timeout,omitempty"`
}

type voiceBody struct {
	VoiceID string   `json:"voice_id,omitempty"`
	Rate    *float64 `json:"rate,omitempty"`
	Emotion string   `json:"emotion,omitempty"`
}

func (r NewSessionRequest) body() (newBody, error) {
	b := newBody{
		AvatarID: r.AvatarID, AvatarName: r.AvatarName, Quality: r.Quality, VideoEncoding: r.VideoEncoding,
		KnowledgeBase: r.KnowledgeBase, KnowledgeBaseID: r.KnowledgeBaseID, Version: r.Version,
		DisableIdleTimeout: r.DisableIdleTimeout,
	}
	if v := r.Voice; v != nil {
		b.Voice = &voiceBody{VoiceID: v.VoiceID, Emotion: v.Emotion}
		if v.Rate != 0 {
			rate := v.Rate
			b.Voice.Rate = &rate
		}
	}
	if d := r.ActivityIdleTimeout; d != 0 {
		if d%time.Second != 0 || d < 30*time.Second || d > time.Hour {
			return newBody{}, sserrors.ErrInvalidParameter.WithCause(
				fmt.Errorf("client: ActivityIdleTimeout %v: whole seconds from 30s to 1h", d))
		}
		secs := int64(d / time.Second)
		b.ActivityIdleTimeout = &secs
	}
	return b, nil
}

// NewSession creates a session (streaming.new) in state new. It sends an
// Idempotency-Key (req.IdempotencyKey or a random one), the same on every
// retry, so a retry after a lost reply returns the session the lost reply
// named and holds no second slot. Refusals: 10012/10013 (avatar), 10015,
// 10007, 10014 and 400558 (limits; the last two retried), 400175 and 40001
// (the body), 401/400112.
func (c *Client) NewSession(ctx context.Context, req NewSessionRequest) (*Session, error) {
	body, err := req.body()
	if err != nil {
		return nil, err
	}
	key := req.IdempotencyKey
	if key == "" {
		key = randomKey()
	}
	var data struct {
		SessionID            string `json:"session_id"`
		AccessToken          string `json:"access_token"`
		RealtimeEndpoint     string `json:"realtime_endpoint"`
		IsPaid               bool   `json:"is_paid"`
		SessionDurationLimit int64  `json:"session_duration_limit"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, path: pathNew, body: body, idempotencyKey: key, resend: true}, &data); err != nil {
		return nil, err
	}
	if data.SessionID == "" {
		return nil, sserrors.ErrInternalServerError.WithCause(errors.New("client: streaming.new answered no session_id"))
	}
	s := &Session{
		c: c, id: data.SessionID, accessToken: data.AccessToken, realtime: data.RealtimeEndpoint,
		paid: data.IsPaid, durationLimit: time.Duration(data.SessionDurationLimit) * time.Second,
	}
	s.guard.Observe(fsm.New)
	return s, nil
}

// randomKey is an Idempotency-Key of 128 random bits.
func randomKey() string {
	var b [16]byte
	rand.Read(b[:])
	return "ssc_" + base64.RawURLEncoding.EncodeToString(b[:])
}
