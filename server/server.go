package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
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
	// Secret keys the session access tokens (HMAC-SHA256). Nodes that share
	// a secret accept each other's access tokens. The default is 32 random
	// bytes, so tokens die with the process.
	Secret []byte

	// Origins lists the Origin header values ("https://app.example.com")
	// allowed to open the realtime socket besides the server's own origin;
	// "*" allows any. Requests without an Origin header are always allowed.
	Origins []string
	// BaseURL, when set, is the public base of realtime_endpoint
	// ("wss://api.example.com" or "https://api.example.com/prefix"; http
	// becomes ws and https wss). The default builds it from each request:
	// its Host, and wss when the request came over TLS or with
	// X-Forwarded-Proto: https.
	BaseURL string

	// Clock times simulated speech and bearer tokens. The default is the
	// real clock.
	Clock Clock
	// TaskDuration says how long the avatar speaks a text. The default is
	// DefaultTaskDuration.
	TaskDuration func(text string) time.Duration
	// Relay carries tasks and interrupts to the node holding the session's
	// realtime socket, and announces each new socket so that it replaces the
	// session's socket on every other node, when several nodes serve one
	// service (see [Relay]).
	// The default (nil) simulates speech on the node that receives the
	// task, which is right for a single node. New subscribes to it;
	// Shutdown and Close cancel the subscription.
	Relay Relay
	// MaxBodyBytes limits request bodies. The default is
	// DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// Realtime tunes the realtime socket.
	Realtime RealtimeConfig
	// Hooks observe the server; nil hooks are skipped.
	Hooks Hooks
	// Idempotency configures the Idempotency-Key of streaming.new (see
	// [IdempotencyConfig]).
	Idempotency IdempotencyConfig
}

// RealtimeConfig tunes the realtime socket. Zero fields take the documented
// defaults.
type RealtimeConfig struct {
	// MaxMessageBytes is the largest client message; a larger one closes
	// the socket with 1009. The default is 64 KiB.
	MaxMessageBytes int64
	// SendQueue is how many messages may wait for a slow client before it
	// is disconnected. The default is 64.
	SendQueue int
	// PingInterval is how often the server pings. The default is 20 s.
	PingInterval time.Duration
	// PongTimeout is how long the server waits for any frame (a pong
	// included) before it drops the socket. The default is 3 × PingInterval
	// / 2 (30 s).
	PongTimeout time.Duration
	// WriteTimeout bounds each write. The default is 10 s.
	WriteTimeout time.Duration
	// CloseGrace is how long the server waits for the client's close frame
	// after sending its own. The default is 2 s.
	CloseGrace time.Duration
}

func (c *RealtimeConfig) setDefaults() {
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 64
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = c.PingInterval * 3 / 2
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.CloseGrace <= 0 {
		c.CloseGrace = 2 * time.Second
	}
}

// Hooks let a caller observe the server (for metrics and logs) without the
// library logging. Hooks are called synchronously from request and socket
// goroutines: they must be fast, must not block and must be safe for
// concurrent use. They never receive a token, an API key or a raw session
// id.
type Hooks struct {
	// SocketOpened is called when a realtime socket is established.
	SocketOpened func(SocketInfo)
	// SocketClosed is called once for every socket SocketOpened reported.
	SocketClosed func(SocketInfo)
	// Refused is called for every request answered with an error (the
	// socket upgrade included).
	Refused func(Refusal)
	// AnnounceFailed is called, with a Relay, when a new socket's
	// announcement could not be published: the socket stays open, but the
	// session's sockets on other nodes are not replaced by it and live
	// until they drop (see [Relay]).
	AnnounceFailed func(AnnounceFailure)
}

// AnnounceFailure describes to hooks a socket whose announcement the Relay
// did not take. It is a plain value.
type AnnounceFailure struct {
	SocketInfo
	// Err is the Relay's error.
	Err error
}

// SocketInfo describes a realtime socket to hooks. It is a plain value.
type SocketInfo struct {
	// Account is the session's account name.
	Account string
	// SessionHash is ShortHash of the session id.
	SessionHash string
}

// Refusal describes a refused request to hooks. It is a plain value.
type Refusal struct {
	// Endpoint is the path called ("/v1/streaming.new").
	Endpoint string
	// Account is the caller's account name, empty when not authenticated.
	Account string
	// SessionHash is ShortHash of the session id named, if any.
	SessionHash string
	// Code and Status are the catalog code and HTTP status answered.
	Code   sserrors.Code
	Status int
	// Err is the error answered.
	Err error
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
	origins  map[string]bool
	anyOrig  bool
	base     *url.URL
	clock    Clock
	maxBody  int64
	rt       RealtimeConfig
	hooks    Hooks
	routes   map[string]route
	upgrader websocket.Upgrader

	hub     *hub
	speech  *speaker
	unsub   func()
	relay   Relay  // nil on a single node
	unrelay func() // cancels the relay subscription

	// ctx is cancelled by Close; socket goroutines derive theirs from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // socket goroutines

	mu       sync.Mutex
	shutdown bool
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
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.TaskDuration == nil {
		cfg.TaskDuration = DefaultTaskDuration
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Tokens == nil {
		cfg.Tokens = NewMemoryTokens(MemoryTokensConfig{TTL: cfg.TokenTTL, Now: cfg.Clock.Now})
	}
	secret := cfg.Secret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
	} else {
		secret = append([]byte(nil), secret...)
	}
	cfg.Realtime.setDefaults()

	s := &Server{
		idem:       cfg.Idempotency.store(cfg.Clock),
		idemFailed: cfg.Idempotency.FinishFailed,

		mgr:      cfg.Manager,
		accounts: cfg.Accounts,
		avatars:  cfg.Avatars,
		tokens:   cfg.Tokens,
		access:   accessTokens{secret: secret},
		origins:  make(map[string]bool),
		clock:    cfg.Clock,
		maxBody:  cfg.MaxBodyBytes,
		rt:       cfg.Realtime,
		hooks:    cfg.Hooks,
	}
	for _, o := range cfg.Origins {
		if o == "*" {
			s.anyOrig = true
			continue
		}
		s.origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("server: Config.BaseURL %q is not an absolute URL", cfg.BaseURL)
		}
		switch u.Scheme {
		case "http", "ws":
			u.Scheme = "ws"
		case "https", "wss":
			u.Scheme = "wss"
		default:
			return nil, fmt.Errorf("server: Config.BaseURL %q: scheme must be http, https, ws or wss", cfg.BaseURL)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawQuery, u.Fragment = "", ""
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
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hub = newHub()
	s.speech = newSpeaker(cfg.Clock, cfg.TaskDuration, s.hub.send)
	s.routes = s.newRoutes()
	s.unrelay = func() {}
	if cfg.Relay != nil {
		cancel, err := cfg.Relay.Subscribe(s.onRelay)
		if err != nil {
			s.cancel()
			return nil, fmt.Errorf("server: Config.Relay: subscribe: %w", err)
		}
		s.relay, s.unrelay = cfg.Relay, cancel
	}
	s.unsub = cfg.Manager.Subscribe(s.onEvent)
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	rt, ok := s.routes[r.URL.Path]
	if !ok {
		s.fail(w, r, request{}, errNotFound)
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		s.fail(w, r, request{}, errMethodNotAllowed)
		return
	}
	rt.serve(w, r)
}

// fail answers err and reports it to the Refused hook.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, req request, err error) {
	writeError(w, err)
	if s.hooks.Refused != nil {
		s.hooks.Refused(Refusal{
			Endpoint:    r.URL.Path,
			Account:     req.account.Name,
			SessionHash: ShortHash(req.sessionID),
			Code:        sserrors.CodeOf(err),
			Status:      sserrors.StatusOf(err),
			Err:         err,
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
	for _, c := range s.stop() {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel() // kills every socket
		<-done
		return ctx.Err()
	}
}

// Close drops every realtime socket at once (no close frame) and releases
// what Shutdown releases. It returns when the sockets' goroutines have
// ended.
func (s *Server) Close() error {
	s.stop()
	s.cancel() // kills every socket
	s.wg.Wait()
	return nil
}

// stop refuses new sockets, ends the subscriptions and speech (once) and
// returns the sockets registered.
func (s *Server) stop() []*client {
	s.mu.Lock()
	first := !s.shutdown
	s.shutdown = true
	s.mu.Unlock()
	if first {
		s.unsub()
		s.unrelay()
		s.speech.close()
	}
	return s.hub.close()
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// onEvent routes one Manager transition to this node's socket for the
// session, and ends its speech when it closes.
func (s *Server) onEvent(ev session.Event) {
	if ev.To == fsm.Unknown {
		return // the end of the retention window: no socket is left by then
	}
	if ev.To >= fsm.Closing {
		s.speech.interrupt(ev.SessionID)
	}
	s.hub.state(ev.SessionID, ev.To, ev.Epoch)
}
