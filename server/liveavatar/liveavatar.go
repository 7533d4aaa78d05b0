package liveavatar

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// Paths served by a [Handler]. PathSocket's {id} is the session id.
const (
	PathToken     = "/v1/sessions/token"
	PathStart     = "/v1/sessions/start"
	PathStop      = "/v1/sessions/stop"
	PathKeepAlive = "/v1/sessions/keep-alive"
	PathList      = "/v1/sessions"
	PathSession   = "/v1/sessions/{id}"
	PathSocket    = "/v1/sessions/{id}/ws"
)

// Defaults of a [Config].
const (
	// IdleTimeout closes a session with no activity for five minutes, as
	// LiveAvatar documents.
	IdleTimeout = 5 * time.Minute
	// MaxSessionDuration is the largest max_session_duration a token
	// accepts, in seconds (a day); the plan's limit, when smaller, wins.
	MaxSessionDuration = 24 * 60 * 60
	// SandboxDuration bounds a sandbox session (is_sandbox), as LiveAvatar's
	// sandbox does.
	SandboxDuration = time.Minute
	// DefaultMaxBodyBytes is the largest request body read.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxFrameBytes is the largest LITE socket message: LiveAvatar
	// allows agent.speak frames of up to 1 MB.
	DefaultMaxFrameBytes = 1 << 20
	// DefaultMessageRate and DefaultMessageBurst bound a LITE socket's
	// messages: the web SDK sends a whole utterance at once (one frame per
	// second of audio), so the burst is larger than the Streaming socket's.
	DefaultMessageRate  = 50
	DefaultMessageBurst = 200
)

// Accounts finds the account of an X-API-KEY. [server.AccountsByKey]
// implements it. Implementations are safe for concurrent use by multiple
// goroutines.
type Accounts interface {
	LookupAPIKey(apiKey string) (session.Account, bool)
}

// Config configures a [Handler]. Manager and Accounts are required; every
// other zero field takes the documented default.
type Config struct {
	// Manager runs the sessions; the same Manager as the Streaming API's
	// server, so that both surfaces share sessions and limits. The Handler
	// does not close it.
	Manager *session.Manager
	// Accounts resolves X-API-KEY.
	Accounts Accounts
	// Secret keys session tokens and socket credentials. Nodes that share
	// it accept each other's. The default is 32 random bytes, so tokens die
	// with the process.
	Secret []byte
	// Allow, when set, takes one request from the account's rate budget
	// before any work (the Streaming API's: pass [server.Server.Allow]); its
	// error is answered as it is (429/400140 with a Retry-After). Where a
	// request carries only the account's name (a session token, the socket's
	// credential), the account is resolved with [server.ResolveAccount].
	Allow func(ctx context.Context, acct session.Account) error
	// Origins lists the browser origins allowed to call the API and open
	// the socket, as server.Config.Origins. The web SDK sends credentials,
	// so an allowed origin is echoed with Access-Control-Allow-Credentials.
	Origins []string
	// BaseURL, when set, is the public base of ws_url ("wss://api.example.com");
	// the default builds it from each request's Host (wss behind TLS or
	// X-Forwarded-Proto: https).
	BaseURL string
	// Socket bounds the LITE socket. MaxMessageBytes defaults to
	// DefaultMaxFrameBytes, MessageRate and MessageBurst to
	// DefaultMessageRate and DefaultMessageBurst, the rest to package
	// realtime's defaults.
	Socket realtime.SocketConfig
	// Clock times the avatar's speech. The default is the real clock.
	Clock realtime.Clock
	// MaxBodyBytes limits request bodies. The default is DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// BodyReadTimeout bounds the reading of a request's body, counted from
	// when the handler starts serving it: a body not all there in time
	// answers 408/400175 and the connection closes, as the Streaming API's
	// (server.Config.BodyReadTimeout). The default is
	// server.DefaultBodyReadTimeout; negative means no bound. A
	// ResponseWriter that cannot set read deadlines leaves it unbounded.
	BodyReadTimeout time.Duration
	// Now tells the time of tokens and listings. The default is time.Now.
	Now func() time.Time
	// Hooks observe the surface; nil hooks are skipped.
	Hooks Hooks
}

// Hooks let a caller observe the surface (metrics, logs) without the
// library logging. They are called synchronously from request and socket
// goroutines: they must be fast, must not block and must be safe for
// concurrent use. They never receive a token, a credential, an API key or a
// raw session id.
type Hooks struct {
	// SocketOpened is called when a LITE socket is established.
	SocketOpened func(realtime.SocketInfo)
	// SocketClosed is called once for every socket SocketOpened reported.
	SocketClosed func(realtime.SocketInfo)
	// Refused is called for every request of a known route answered with
	// an error (the socket's upgrade included), with the code and status
	// answered; its Endpoint is the route ("/v1/sessions/{id}/ws"), never
	// a path holding a session id.
	Refused func(server.Refusal)
}

// Handler serves LiveAvatar's API and LITE sockets for one node. It is an
// http.Handler for the paths above (others answer a 404 envelope); mount it
// at /v1/sessions and /v1/sessions/. It is safe for concurrent use by
// multiple goroutines.
type Handler struct {
	mgr      *session.Manager
	accounts Accounts
	keys     keyring
	allow    func(context.Context, session.Account) error
	origins  *server.OriginPolicy
	base     *url.URL
	sock     realtime.SocketConfig
	clock    realtime.Clock
	maxBody  int64
	bodyTime time.Duration
	now      func() time.Time
	mux      *http.ServeMux
	upgrader websocket.Upgrader
	unsub    func()

	ctx    context.Context // cancelled by Close: every socket ends
	cancel context.CancelFunc
	wg     sync.WaitGroup // socket goroutines

	mu        sync.Mutex
	bySession map[string]*liteSocket
	// opening holds the sessions whose socket this node is accepting, so
	// that of two concurrent opens of one ws_url here only one succeeds.
	opening  map[string]bool
	closed   bool
	draining bool // see Drain

	hooks Hooks
}

// New returns a Handler for cfg. It subscribes to cfg.Manager's
// transitions; Close ends the subscription and the sockets.
func New(cfg Config) (*Handler, error) {
	if cfg.Manager == nil {
		return nil, errors.New("liveavatar: Config.Manager is required")
	}
	if cfg.Accounts == nil {
		return nil, errors.New("liveavatar: Config.Accounts is required")
	}
	secret := append([]byte(nil), cfg.Secret...)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
	}
	origins, err := server.NewOriginPolicy(cfg.Origins)
	if err != nil {
		return nil, fmt.Errorf("liveavatar: Config.Origins%w", err)
	}
	if cfg.Socket.MaxMessageBytes <= 0 {
		cfg.Socket.MaxMessageBytes = DefaultMaxFrameBytes
	}
	if cfg.Socket.MessageRate <= 0 {
		cfg.Socket.MessageRate = DefaultMessageRate
	}
	if cfg.Socket.MessageBurst <= 0 {
		cfg.Socket.MessageBurst = DefaultMessageBurst
	}
	cfg.Socket = cfg.Socket.WithDefaults()
	if cfg.Clock == nil {
		cfg.Clock = realtime.RealClock{}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.BodyReadTimeout == 0 {
		cfg.BodyReadTimeout = server.DefaultBodyReadTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	keys, err := newKeyring(secret)
	if err != nil {
		return nil, fmt.Errorf("liveavatar: Config.Secret: %w", err)
	}
	h := &Handler{
		mgr:       cfg.Manager,
		accounts:  cfg.Accounts,
		keys:      keys,
		allow:     cfg.Allow,
		origins:   origins,
		sock:      cfg.Socket,
		clock:     cfg.Clock,
		maxBody:   cfg.MaxBodyBytes,
		bodyTime:  cfg.BodyReadTimeout,
		now:       cfg.Now,
		bySession: make(map[string]*liteSocket),
		opening:   make(map[string]bool),
		hooks:     cfg.Hooks,
	}
	if cfg.BaseURL != "" {
		u, err := server.ParseBaseURL(cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("liveavatar: Config.BaseURL %w", err)
		}
		h.base = u
	}
	h.upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// The origin is checked before the upgrade, with an envelope.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, _ *http.Request, status int, _ error) {
			writeError(w, sserrors.ErrInvalidParameter.WithStatus(status))
		},
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("POST "+PathToken, h.api(false, h.createToken))
	h.mux.HandleFunc("POST "+PathStart, h.api(true, h.start))
	h.mux.HandleFunc("POST "+PathStop, h.api(true, h.stop))
	h.mux.HandleFunc("POST "+PathKeepAlive, h.api(true, h.keepAlive))
	h.mux.HandleFunc("GET "+PathList, h.api(true, h.list))
	h.mux.HandleFunc("GET "+PathSession, h.api(true, h.get))
	h.mux.HandleFunc("GET "+PathSocket, h.serveSocket)
	h.unsub = cfg.Manager.Subscribe(h.onEvent)
	return h, nil
}

// ServeHTTP serves the API, answering CORS preflights of allowed origins.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if h.cors(w, r) {
		return
	}
	handler, pattern := h.mux.Handler(r)
	if pattern == "" {
		// ServeMux answers an unknown path 404 and a known path with the
		// wrong method 405, in plain text: answer both in the envelope.
		rec := &statusOnly{header: http.Header{}}
		handler.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeError(w, errMethodNotAllowed)
			return
		}
		writeError(w, errNotFound)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// statusOnly records the status and headers of ServeMux's own refusals.
type statusOnly struct {
	header http.Header
	status int
}

func (s *statusOnly) Header() http.Header         { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(status int)      { s.status = status }

// cors sets the CORS headers for an allowed origin and answers a preflight
// (reporting true); an origin not allowed gets no CORS header.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request) bool {
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	origin := r.Header.Get("Origin")
	if origin != "" && h.origins.Allows(origin) {
		hd := w.Header()
		hd.Add("Vary", "Origin")
		hd.Set("Access-Control-Allow-Origin", origin)
		hd.Set("Access-Control-Allow-Credentials", "true")
		if preflight {
			hd.Set("Access-Control-Allow-Methods", "GET, POST")
			hd.Set("Access-Control-Allow-Headers", "Authorization, X-API-KEY, Content-Type")
			hd.Set("Access-Control-Max-Age", strconv.Itoa(600))
		} else {
			hd.Set("Access-Control-Expose-Headers", "Retry-After")
		}
	}
	if preflight {
		w.WriteHeader(http.StatusNoContent)
	}
	return preflight
}

// caller is who made a request: an account by its API key, or a session
// token's session.
type caller struct {
	account string
	plan    session.Account // with an API key only
	// token is the session token's claims; zero with an API key.
	token tokenClaims
}

func (c caller) bearer() bool { return c.token.SessionID != "" }

// accountOf returns the caller's account: the API key's, or the one a
// session token names, resolved by name; the zero Account when the caller
// is not authenticated.
func (h *Handler) accountOf(c caller) session.Account {
	if c.plan.Name != "" {
		return c.plan
	}
	if c.account == "" {
		return session.Account{}
	}
	return server.ResolveAccount(h.accounts, c.account)
}

// api authenticates the caller (X-API-KEY, or with bearerOK a session
// token), takes a request from its rate budget, runs fn and writes its
// answer or error.
func (h *Handler) api(bearerOK bool, fn func(*http.Request, caller) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := h.authenticate(r, bearerOK)
		if err == nil && h.allow != nil {
			err = h.allow(r.Context(), h.accountOf(c))
		}
		if err != nil {
			h.fail(w, r, h.accountOf(c), "", err)
			return
		}
		if h.bodyTime > 0 && r.Body != nil && r.Body != http.NoBody {
			// A body without one (a GET) gets no deadline: the read that
			// watches for the client going away would fail at it.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.bodyTime))
		}
		r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
		status, data, err := fn(r, c)
		if err != nil {
			h.fail(w, r, h.accountOf(c), c.token.SessionID, err)
			return
		}
		writeSuccess(w, status, data)
	}
}

func (h *Handler) authenticate(r *http.Request, bearerOK bool) (caller, error) {
	if key := r.Header.Get("X-Api-Key"); key != "" {
		acct, ok := h.accounts.LookupAPIKey(key)
		if !ok {
			return caller{}, sserrors.ErrUnauthorized
		}
		return caller{account: acct.Name, plan: acct}, nil
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !bearerOK {
		return caller{}, sserrors.ErrUnauthorized
	}
	claims, ok := h.keys.verifyToken(strings.TrimSpace(token))
	if !ok {
		return caller{}, sserrors.ErrUnauthorized
	}
	return caller{account: claims.Account, token: claims}, nil
}

// fail answers err and reports it to Hooks.Refused, with the hash of the
// session named (sessionID, else the path's) and the route, not the path.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, account session.Account, sessionID string, err error) {
	if sserrors.StatusOf(err) == http.StatusRequestTimeout {
		w.Header().Set("Connection", "close") // the rest of the body is not awaited
	}
	writeError(w, err)
	if h.hooks.Refused == nil {
		return
	}
	status, code := http.StatusUnprocessableEntity, sserrors.Code(0)
	var v *validationError
	if !errors.As(err, &v) {
		e := translate(err)
		status, code = e.Status, e.Code
	}
	if sessionID == "" {
		sessionID = r.PathValue("id")
	}
	h.hooks.Refused(server.Refusal{
		Endpoint:    endpoint(r),
		Account:     account,
		SessionHash: session.ShortHash(sessionID),
		Code:        code,
		Status:      status,
		Err:         err,
	})
}

// endpoint names the route of r for hooks: its pattern's path
// ("/v1/sessions/{id}"), so that no session id in the URL reaches them.
func endpoint(r *http.Request) string {
	if r.Pattern == "" {
		return r.URL.Path // a path no route matched names no session
	}
	_, path, ok := strings.Cut(r.Pattern, " ")
	if !ok {
		return r.Pattern
	}
	return path
}

// Shutdown stops taking sockets, ends the Manager subscription and the
// avatars' speech, closes every LITE socket with 1001 ("server shutting
// down") and waits for their goroutines until ctx is done; then it drops
// those left and returns ctx's error. It changes no session: to send
// clients the closed state first, close the Manager before. Calling it
// again does nothing more.
func (h *Handler) Shutdown(ctx context.Context) error {
	for _, s := range h.halt() {
		s.conn.Close(websocket.CloseGoingAway, CloseShuttingDown)
	}
	if err := realtime.Wait(ctx, &h.wg); err != nil {
		h.cancel()
		h.wg.Wait()
		return err
	}
	return nil
}

// Close drops every LITE socket at once (no close frame) and releases what
// Shutdown releases. It returns once the sockets' goroutines have ended.
func (h *Handler) Close() error {
	h.halt()
	h.cancel()
	h.wg.Wait()
	return nil
}

// halt refuses new sockets, ends the subscription (once) and returns the
// sockets registered.
func (h *Handler) halt() []*liteSocket {
	h.mu.Lock()
	first := !h.closed
	h.closed = true
	socks := make([]*liteSocket, 0, len(h.bySession))
	for _, s := range h.bySession {
		socks = append(socks, s)
	}
	h.mu.Unlock()
	if first {
		h.unsub()
	}
	return socks
}
