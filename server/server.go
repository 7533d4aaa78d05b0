package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/websocket"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// DefaultMaxBodyBytes is the largest request body the server reads.
const DefaultMaxBodyBytes = 1 << 20

// Config configures a [Server]. Manager, Accounts and Avatars are required;
// every other zero field takes the documented default. A Config is a plain
// value; New copies what it needs.
type Config struct {
	// Manager runs the sessions. Required. The Server does not close it.
	Manager *session.Manager
	// Accounts resolves X-Api-Key. Required.
	Accounts Accounts
	// Avatars answers avatar.list. Required; normally the catalog the
	// Manager resolves avatars with.
	Avatars session.AvatarCatalog

	// Tokens keeps the bearer tokens of streaming.create_token. The default
	// is NewMemoryTokens with TokenTTL and Clock.
	Tokens TokenStore
	// TokenTTL is how long a bearer token lives unused (used only for the
	// default Tokens). The default is DefaultTokenTTL (one hour).
	TokenTTL time.Duration
	// Secret keys the session access tokens (AES-GCM). Nodes that share
	// a secret accept each other's access tokens. The default is 32 random
	// bytes, so tokens die with the process.
	Secret []byte

	// Origins lists the browser origins allowed to call the API (CORS: a
	// preflight gets 204 with the allow headers, every answer the
	// Access-Control-Allow-Origin header) and to open the realtime socket
	// besides the server's own origin: exact origins
	// ("https://app.example.com"), "*" for any, or a port wildcard
	// ("http://localhost:*"); see [OriginPolicy]. Other origins get no CORS
	// header. Requests without an Origin header are always allowed. New
	// fails on a malformed entry.
	Origins []string
	// BaseURL, when set, is the public base of realtime_endpoint and url
	// ("wss://api.example.com" or "https://api.example.com/prefix"; http
	// becomes ws and https wss): set it (config public_url) when clients
	// reach the node through a proxy or a name. The default is the address
	// each request's connection was accepted on (ws, or wss over TLS).
	// Never the request's Host or X-Forwarded-* headers.
	BaseURL string

	// Clock times simulated speech, and the defaults of Tokens, RateLimiter
	// and Idempotency.Store. The default is the real clock.
	Clock realtime.Clock
	// TaskDuration says how long the avatar speaks a text. The default is
	// DefaultTaskDuration.
	TaskDuration func(text string) time.Duration
	// Relay carries tasks and interrupts to the node holding the session's
	// realtime socket, and announces each new socket so that it replaces the
	// session's socket on every other node, when several nodes serve one
	// service (see [realtime.Relay]).
	// The default (nil) simulates speech on the node that receives the
	// task, which is right for a single node. New subscribes to it;
	// Shutdown and Close cancel the subscription.
	Relay realtime.Relay
	// MaxBodyBytes limits request bodies. The default is
	// DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// BodyReadTimeout bounds the reading of a request's body, counted from
	// when the server starts serving the request: a body not all there in
	// time answers 408/400175 and the connection closes. The default is
	// DefaultBodyReadTimeout (10 s); negative means no bound. The realtime
	// upgrade is not bounded by it.
	BodyReadTimeout time.Duration
	// RateLimit returns the request budget of the account (resolved by
	// name through [AccountNames] where a request carries only the name:
	// the realtime upgrade); nil, or
	// the zero RateLimit, means unlimited. Each account has its own budget,
	// taken once per authenticated request (the realtime upgrade included)
	// before any work: over it, the request answers 429/400140 with a
	// Retry-After and changes nothing.
	RateLimit func(acct session.Account) RateLimit
	// RateLimiter keeps the budgets of RateLimit. The default is a
	// [MemoryRateLimiter] on Clock; server/redisrate shares them between
	// the nodes of one Redis. When it fails, the request answers
	// 503/400558 with a Retry-After (see [RateLimiter]).
	RateLimiter RateLimiter
	// Realtime tunes the realtime socket.
	Realtime realtime.SocketConfig
	// Hooks observe the server; nil hooks are skipped.
	Hooks Hooks
	// Idempotency configures the Idempotency-Key of streaming.new (see
	// [IdempotencyConfig]).
	Idempotency IdempotencyConfig

	// Ready, when set, tells /readyz whether the node's backend answers
	// (with Redis: a PING); see [Server.Health]. The default (nil) is
	// always ready.
	Ready func(context.Context) error
	// ReadyTimeout bounds each Ready call. The default is
	// DefaultReadyTimeout (1 s).
	ReadyTimeout time.Duration

	// Media, when set, serves the avatar over WebRTC (HeyGen v1):
	// streaming.new answers an offer unless "version":"v2", and a session
	// started with an answer is connected by its peer (see package media).
	// It must run on Manager. The Server does not close it. The default
	// (nil) serves no media.
	Media *media.Engine
}

// Hooks let a caller observe the server (for metrics and logs) without the
// library logging. Hooks are called synchronously from request and socket
// goroutines: they must be fast, must not block and must be safe for
// concurrent use. They never receive a token, an API key or a raw session
// id.
type Hooks struct {
	// SocketOpened is called when a realtime socket is established.
	SocketOpened func(realtime.SocketInfo)
	// SocketClosed is called once for every socket SocketOpened reported.
	SocketClosed func(realtime.SocketInfo)
	// Refused is called for every request answered with an error (the
	// socket upgrade included).
	Refused func(Refusal)
	// AnnounceFailed is called, with a Relay, when a new socket's
	// announcement could not be published: the socket stays open, but the
	// session's sockets on other nodes are not replaced by it and live
	// until they drop (see [Relay]).
	AnnounceFailed func(realtime.AnnounceFailure)
}

// Refusal describes a refused request to hooks. It is a plain value.
type Refusal struct {
	// Endpoint is the path called ("/v1/streaming.new").
	Endpoint string
	// Account is the caller's account, resolved with [ResolveAccount]
	// where the request carries only its name; it is the zero Account
	// when the caller is not authenticated.
	Account session.Account
	// SessionHash is session.ShortHash of the session id named, if any.
	SessionHash string
	// Code and Status are the catalog code and HTTP status answered.
	Code   sserrors.Code
	Status int
	// Err is the error answered.
	Err error
	// Context is the refused request's context, with whatever the
	// embedder's middleware put there (a trace, a request id). It may be
	// done already.
	Context context.Context
}

// Server serves the Streaming API and the realtime socket for one node. It
// is an [http.Handler] answering paths under /v1/ (every other path is a
// JSON 404). It is safe for concurrent use by multiple goroutines.
type Server struct {
	idem       IdempotencyStore // Config.Idempotency
	idemFailed func(error)

	mgr      *session.Manager
	accounts Accounts
	avatars  session.AvatarCatalog
	tokens   TokenStore
	access   accessTokens
	base     *url.URL
	maxBody  int64
	hooks    Hooks
	routes   map[string]route
	upgrader websocket.Upgrader
	rt       *realtime.Hub
	health   *health

	// originPolicy is Config.Origins, for CORS and the socket's origin check.
	originPolicy *OriginPolicy
	bodyTimeout  time.Duration
	rateLimit    func(acct session.Account) RateLimit
	rates        RateLimiter
	media        *media.Engine // Config.Media
	mediaRelay   func()        // cancels the Relay subscription that plays tasks on Media
}

// New returns a Server for cfg. It subscribes once to cfg.Manager's
// transitions, and to cfg.Relay when there is one (it fails when that
// subscription fails); call Shutdown or Close to release the subscriptions
// and the sockets.
func New(cfg Config) (*Server, error) {
	if cfg.Manager == nil {
		return nil, errors.New("server: Config.Manager is required")
	}
	if cfg.Accounts == nil {
		return nil, errors.New("server: Config.Accounts is required")
	}
	if cfg.Avatars == nil {
		return nil, errors.New("server: Config.Avatars is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Tokens == nil {
		now := time.Now
		if cfg.Clock != nil {
			now = cfg.Clock.Now
		}
		cfg.Tokens = NewMemoryTokens(MemoryTokensConfig{TTL: cfg.TokenTTL, Now: now})
	}
	secret := cfg.Secret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
	} else {
		secret = append([]byte(nil), secret...)
	}
	if cfg.BodyReadTimeout == 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if cfg.RateLimiter == nil {
		now := time.Now
		if cfg.Clock != nil {
			now = cfg.Clock.Now
		}
		cfg.RateLimiter = NewMemoryRateLimiter(MemoryRateLimiterConfig{Now: now})
	}
	access, err := newAccessTokens(secret)
	if err != nil {
		return nil, fmt.Errorf("server: Config.Secret: %w", err)
	}
	policy, err := NewOriginPolicy(cfg.Origins)
	if err != nil {
		return nil, fmt.Errorf("server: Config.Origins%w", err)
	}

	s := &Server{
		idem:       cfg.Idempotency.store(cfg.Clock),
		idemFailed: cfg.Idempotency.FinishFailed,

		mgr:      cfg.Manager,
		accounts: cfg.Accounts,
		avatars:  cfg.Avatars,
		tokens:   cfg.Tokens,
		access:   access,
		maxBody:  cfg.MaxBodyBytes,
		hooks:    cfg.Hooks,

		originPolicy: policy,
		bodyTimeout:  cfg.BodyReadTimeout,
		rateLimit:    cfg.RateLimit,
		rates:        cfg.RateLimiter,
		health:       newHealth(cfg),
		media:        cfg.Media,
	}
	if cfg.BaseURL != "" {
		u, err := ParseBaseURL(cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("server: Config.BaseURL %w", err)
		}
		s.base = u
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:    4096,
		WriteBufferSize:   4096,
		EnableCompression: false,
		// The origin is checked before the upgrade, with a JSON refusal.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, r *http.Request, status int, _ error) {
			err := sserrors.ErrInvalidParameter.WithStatus(status)
			if status >= 500 {
				err = sserrors.ErrInternalServerError
			}
			s.fail(w, r, request{}, err)
		},
	}
	s.routes = s.newRoutes()
	hub, err := realtime.New(realtime.Config{
		Manager:      cfg.Manager,
		Socket:       cfg.Realtime,
		Clock:        cfg.Clock,
		TaskDuration: cfg.TaskDuration,
		Relay:        cfg.Relay,
		Hooks: realtime.Hooks{
			SocketOpened:   cfg.Hooks.SocketOpened,
			SocketClosed:   cfg.Hooks.SocketClosed,
			AnnounceFailed: cfg.Hooks.AnnounceFailed,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("server: Config.Relay: subscribe: %w", err)
	}
	s.rt = hub
	if err := s.followRelay(cfg.Relay); err != nil {
		_ = hub.Close()
		return nil, fmt.Errorf("server: Config.Relay: subscribe: %w", err)
	}
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	isPreflight := s.cors(w, r) // first: every answer, refusals included
	if s.refuseWhileDraining(w, r) {
		return
	}
	s.setBodyDeadline(w, r)
	rt, ok := s.routes[r.URL.Path]
	if !ok {
		s.fail(w, r, request{}, errNotFound)
		return
	}
	if isPreflight {
		preflight(w, rt)
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		s.fail(w, r, request{}, errMethodNotAllowed)
		return
	}
	rt.serve(w, r)
}

// fail answers err and reports it to the Refused hook. A 503, or a 429 of
// a rate bound (400140), always carries a Retry-After: one second when the
// error that refused (a RateLimiter's, a TokenStore's, an
// IdempotencyStore's) set none.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, req request, err error) {
	if e, ok := sserrors.As(err); ok && e.RetryAfter <= 0 &&
		(e.Status == http.StatusServiceUnavailable || e.Code == sserrors.CodeMovioAPIExceedRateLimit) {
		err = e.WithRetryAfter(time.Second)
	}
	writeError(w, err)
	if s.hooks.Refused != nil {
		s.hooks.Refused(Refusal{
			Endpoint:    r.URL.Path,
			Account:     req.account,
			SessionHash: session.ShortHash(req.sessionID),
			Code:        sserrors.CodeOf(err),
			Status:      sserrors.StatusOf(err),
			Err:         err,
			Context:     r.Context(),
		})
	}
}

// Shutdown stops accepting realtime sockets, ends the Manager and Relay
// subscriptions and simulated speech, and closes every socket with 1001
// ("server shutting down"), waiting for their goroutines until ctx is done;
// then it drops the sockets left. It does not close the Manager: to send
// clients the closed state first, close the Manager before calling
// Shutdown. Calling it again does nothing more and returns nil once the
// sockets are gone.
func (s *Server) Shutdown(ctx context.Context) error {
	s.unfollowRelay()
	return s.rt.Shutdown(ctx)
}

// Close drops every realtime socket at once (no close frame) and releases
// what Shutdown releases. It returns when the sockets' goroutines have
// ended.
func (s *Server) Close() error {
	s.unfollowRelay()
	return s.rt.Close()
}
