// Package liveavatar is a Go client of LiveAvatar's session API (LITE
// mode) as server/liveavatar serves it, a sibling of package client (the
// Streaming API). It speaks LiveAvatar's wire: the {"code","data","message"}
// envelope with success code 1000, session tokens, and the LITE WebSocket
// that start returns.
//
// A backend mints a session token with its API key; the app (or the same
// program) starts the session with the token and talks to the avatar over
// the LITE socket:
//
//	c := liveavatar.New("http://127.0.0.1:8080", liveavatar.WithAPIKey(key))
//	tok, _ := c.CreateToken(ctx, liveavatar.TokenRequest{Mode: "LITE", AvatarID: "Wayne_20240711"})
//	s := c.Session(tok.SessionToken)
//	started, _ := s.Start(ctx)
//	lite, _ := s.Connect(ctx, started.WSURL)  // session.state_updated connecting, connected
//	_ = lite.Speak("utterance-1", pcm)        // PCM s16le 24 kHz mono, sent in 1 s chunks
//	_ = s.Stop(ctx, "USER_CLOSED")
//
// # Errors
//
// An envelope refusal is an *errors.Error (package streamsession/errors)
// with the answer's code, HTTP status, message and Retry-After: errors.Is
// matches it against the catalog (plan concurrency is code 4003, HTTP
// 403). A 422 is a *[ValidationError] listing FastAPI's detail entries. A
// request that got no answer is returned wrapped as it came from
// net/http. Nothing is retried.
//
// # Concurrency
//
// A Client, a Session and a Lite socket are safe for concurrent use by
// multiple goroutines.
package liveavatar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
)

// CodeSuccess is the envelope code of every successful answer.
const CodeSuccess = 1000

// Client calls one service's LiveAvatar API. It is safe for concurrent use
// by multiple goroutines.
type Client struct {
	base   string
	apiKey string
	http   *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sends key as X-API-KEY on the calls that take one.
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithHTTPClient makes the calls with hc. The default is a client with a
// 30 s timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// New returns a Client of the service at baseURL ("http://host:port").
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// ValidationError is a 422 answer: the request's fields were refused.
type ValidationError struct {
	Detail []FieldError `json:"detail"`
}

// FieldError is one refused field: where (["body","avatar_id"]), why, and
// the kind of failure ("missing", "enum", ...).
type FieldError struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Detail))
	for i, d := range e.Detail {
		parts[i] = fmt.Sprintf("%v: %s", d.Loc, d.Msg)
	}
	return "liveavatar: invalid request: " + strings.Join(parts, "; ")
}

// call makes one request with auth ("key" for the API key, else a session
// token) and decodes a success's data into out.
func (c *Client) call(ctx context.Context, method, path, bearer string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	} else if c.apiKey != "" {
		req.Header.Set("X-API-KEY", c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("liveavatar: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("liveavatar: %s %s: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusUnprocessableEntity {
		v := &ValidationError{}
		if json.Unmarshal(raw, v) == nil && len(v.Detail) > 0 {
			return v
		}
	}
	var env struct {
		Code    int             `json:"code"`
		Data    json.RawMessage `json:"data"`
		Message string          `json:"message"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("liveavatar: %s %s: HTTP %d, not an envelope: %w", method, path, resp.StatusCode, err)
	}
	if resp.StatusCode >= 300 || env.Code != CodeSuccess {
		e := sserrors.New(sserrors.Code(env.Code), resp.StatusCode, env.Message)
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e = e.WithRetryAfter(time.Duration(s) * time.Second)
		}
		return e
	}
	if out != nil && len(env.Data) > 0 && string(env.Data) != "null" {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

// TokenRequest is the body of POST /v1/sessions/token. Mode and AvatarID
// are required; FULL needs AvatarPersona (and cannot be started here).
type TokenRequest struct {
	Mode               string         `json:"mode,omitempty"`
	AvatarID           string         `json:"avatar_id,omitempty"`
	IsSandbox          bool           `json:"is_sandbox,omitempty"`
	MaxSessionDuration int            `json:"max_session_duration,omitempty"`
	VideoSettings      *VideoSettings `json:"video_settings,omitempty"`
	AvatarPersona      map[string]any `json:"avatar_persona,omitempty"`
}

// VideoSettings are the session's video quality and encoding.
type VideoSettings struct {
	Quality  string `json:"quality,omitempty"`
	Encoding string `json:"encoding,omitempty"`
}

// Token is a minted session: its id and the session token that starts it.
type Token struct {
	SessionID    string `json:"session_id"`
	SessionToken string `json:"session_token"`
}

// CreateToken mints a session token (the session is created, state new,
// holding a slot of the account's plan). It needs the API key.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (Token, error) {
	var t Token
	err := c.call(ctx, http.MethodPost, "/v1/sessions/token", "", req, &t)
	return t, err
}

// Entry is one session as the list and get answer it.
type Entry struct {
	ID              string  `json:"id"`
	CreatedAt       string  `json:"created_at"`
	UpdatedAt       string  `json:"updated_at"`
	Duration        int64   `json:"duration"`
	CreditsConsumed float64 `json:"credits_consumed"`
	State           string  `json:"state"`
	CloseReason     *string `json:"close_reason"`
	// Mode ("LITE" or "FULL") and IsSandbox are nil except when a session
	// token reads its own session (Session.Get): the server keeps neither,
	// its token says them.
	Mode      *string `json:"mode"`
	IsSandbox *bool   `json:"is_sandbox"`
}

// Page is one page of a list.
type Page struct {
	Count    int     `json:"count"`
	Results  []Entry `json:"results"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
}

// List returns one page of the account's sessions of type "active" or
// "historic"; page and pageSize 0 take the server's defaults (1 and 20).
func (c *Client) List(ctx context.Context, typ string, page, pageSize int) (Page, error) {
	q := url.Values{"type": {typ}}
	if page > 0 {
		q.Set("page", strconv.Itoa(page))
	}
	if pageSize > 0 {
		q.Set("page_size", strconv.Itoa(pageSize))
	}
	var p Page
	err := c.call(ctx, http.MethodGet, "/v1/sessions?"+q.Encode(), "", nil, &p)
	return p, err
}

// Get returns one session of the account.
func (c *Client) Get(ctx context.Context, sessionID string) (Entry, error) {
	var e Entry
	err := c.call(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(sessionID), "", nil, &e)
	return e, err
}

// Stop stops one of the account's sessions with reason ("" is UNKNOWN).
func (c *Client) Stop(ctx context.Context, sessionID, reason string) error {
	return c.call(ctx, http.MethodPost, "/v1/sessions/stop", "", stopBody{SessionID: sessionID, Reason: reason}, nil)
}

// KeepAlive pushes back the idle timeout of one of the account's sessions.
func (c *Client) KeepAlive(ctx context.Context, sessionID string) error {
	return c.call(ctx, http.MethodPost, "/v1/sessions/keep-alive", "", map[string]string{"session_id": sessionID}, nil)
}

type stopBody struct {
	SessionID string `json:"session_id,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Session is one session seen through its session token.
type Session struct {
	c     *Client
	token string
}

// Session returns the session of a session token.
func (c *Client) Session(token string) *Session { return &Session{c: c, token: token} }

// Started is what start answers.
type Started struct {
	SessionID string `json:"session_id"`
	WSURL     string `json:"ws_url"`
	// MaxSessionDuration is in seconds, nil without a limit.
	MaxSessionDuration *int64 `json:"max_session_duration"`
}

// Start starts the session (new → connecting) and returns its LITE
// socket's URL. A FULL token is refused (code 4501).
func (s *Session) Start(ctx context.Context) (Started, error) {
	var out Started
	err := s.c.call(ctx, http.MethodPost, "/v1/sessions/start", s.token, nil, &out)
	return out, err
}

// Stop stops the session with reason ("" is UNKNOWN). Stopping a session
// already closed succeeds.
func (s *Session) Stop(ctx context.Context, reason string) error {
	return s.c.call(ctx, http.MethodPost, "/v1/sessions/stop", s.token, stopBody{Reason: reason}, nil)
}

// KeepAlive pushes back the session's idle timeout (connected only).
func (s *Session) KeepAlive(ctx context.Context) error {
	return s.c.call(ctx, http.MethodPost, "/v1/sessions/keep-alive", s.token, nil, nil)
}

// Get returns the session.
func (s *Session) Get(ctx context.Context, sessionID string) (Entry, error) {
	var e Entry
	err := s.c.call(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(sessionID), s.token, nil, &e)
	return e, err
}
