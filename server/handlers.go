package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// Paths served by the Server.
const (
	PathCreateToken    = "/v1/streaming.create_token"
	PathNew            = "/v1/streaming.new"
	PathStart          = "/v1/streaming.start"
	PathICE            = "/v1/streaming.ice"
	PathTask           = "/v1/streaming.task"
	PathInterrupt      = "/v1/streaming.interrupt"
	PathStartListening = "/v1/streaming.start_listening"
	PathStopListening  = "/v1/streaming.stop_listening"
	PathKeepAlive      = "/v1/streaming.keep_alive"
	PathStop           = "/v1/streaming.stop"
	PathList           = "/v1/streaming.list"
	PathAvatarList     = "/v1/streaming/avatar.list"
	PathRealtime       = "/v1/ws/streaming.chat"
)

type route struct {
	method string
	serve  http.HandlerFunc
}

// request is what the server knows about the caller of one request.
type request struct {
	account session.Account
	// token is the bearer token, empty when the caller sent X-Api-Key. A
	// bearer token acts on the session it created and no other.
	token string
	// bound is the session the bearer token created, if any.
	bound string
	// sessionID is the session the call names, for hooks.
	sessionID string
}

// rawAnswer is an answer that writes itself instead of taking the data
// envelope: streaming.create_token's, and a call forwarded to another node.
type rawAnswer interface{ write(w http.ResponseWriter) }

// tokenData is the answer of streaming.create_token, whose envelope is
// {"error": null, "data": {"token": ...}}.
type tokenData string

func (t tokenData) write(w http.ResponseWriter) { writeToken(w, string(t)) }

func (s *Server) newRoutes() map[string]route {
	post := func(allowToken bool, fn func(*http.Request, *request) (any, error)) route {
		return route{method: http.MethodPost, serve: s.handle(allowToken, fn)}
	}
	get := func(fn func(*http.Request, *request) (any, error)) route {
		return route{method: http.MethodGet, serve: s.handle(true, fn)}
	}
	return map[string]route{
		PathCreateToken:    post(false, s.createToken),
		PathNew:            {method: http.MethodPost, serve: s.authed(true, s.idempotent(s.answer(s.newSession)))},
		PathStart:          post(true, s.start),
		PathICE:            post(true, s.ice),
		PathTask:           post(true, s.task),
		PathInterrupt:      post(true, s.interrupt),
		PathStartListening: post(true, s.command(fsm.CmdStartListening)),
		PathStopListening:  post(true, s.command(fsm.CmdStopListening)),
		PathKeepAlive:      post(true, s.command(fsm.CmdKeepAlive)),
		PathStop:           post(true, s.stopSession),
		PathList:           get(s.list),
		PathAvatarList:     get(s.avatarList),
		PathRealtime:       {method: http.MethodGet, serve: s.serveRealtime},
		PathGuardJS:        {method: http.MethodGet, serve: serveGuardJS},
	}
}

// handle authenticates the caller, runs fn and writes its answer.
func (s *Server) handle(allowToken bool, fn func(*http.Request, *request) (any, error)) http.HandlerFunc {
	return s.authed(allowToken, s.answer(fn))
}

// callerKey is the request context key of the *request that authed made.
type callerKey struct{}

// callerOf returns the caller authed found for r.
func callerOf(r *http.Request) *request {
	req, _ := r.Context().Value(callerKey{}).(*request)
	if req == nil {
		return &request{}
	}
	return req
}

// authed authenticates the caller and takes its request budget, bounds a
// POST's body, and hands the request to next with the caller in its
// context (see callerOf).
func (s *Server) authed(allowToken bool, next http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := s.authenticate(r, allowToken)
		if err == nil {
			err = s.allow(r.Context(), req.account)
		}
		if err != nil {
			s.fail(w, r, req, err)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, &req)))
	}
}

// answer runs fn for the caller authed found and writes its answer: the
// data envelope, or the error.
func (s *Server) answer(fn func(*http.Request, *request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := callerOf(r)
		data, err := fn(r, req)
		if err != nil {
			s.refuse(w, r, *req, err)
			return
		}
		if raw, ok := data.(rawAnswer); ok {
			raw.write(w)
			return
		}
		writeData(w, data)
	})
}

// refuse is fail for a request whose body may be left unread: a body that
// did not arrive in time also closes the connection.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, req request, err error) {
	if sserrors.StatusOf(err) == http.StatusRequestTimeout {
		w.Header().Set("Connection", "close")
	}
	s.fail(w, r, req, err)
}

// authenticate finds the caller's account from X-Api-Key or, when
// allowToken, from a bearer token. A bearer token bound to a session that is
// no longer addressable is revoked.
func (s *Server) authenticate(r *http.Request, allowToken bool) (request, error) {
	if acct, ok := accountFrom(r.Context()); ok {
		return request{account: acct}, nil // resolved by the embedder (WithAccount)
	}
	if key := r.Header.Get("X-Api-Key"); key != "" {
		acct, ok := s.accounts.LookupAPIKey(key)
		if !ok {
			return request{}, sserrors.ErrUnauthorized
		}
		return request{account: acct}, nil
	}
	token, ok := bearerToken(r)
	if !ok || !allowToken {
		return request{}, sserrors.ErrUnauthorized
	}
	ctx := r.Context()
	t, err := s.tokens.Get(ctx, token)
	if err != nil {
		return request{}, storeError(err)
	}
	req := request{account: t.Account, token: token, bound: t.SessionID}
	if t.SessionID != "" {
		if _, err := s.mgr.Get(ctx, t.Account.Name, t.SessionID); errors.Is(err, sserrors.ErrSessionNotFound) {
			_ = s.tokens.Revoke(context.WithoutCancel(ctx), token)
			return request{}, sserrors.ErrUnauthorized
		}
	}
	return req, nil
}

// storeError keeps a token store's error when it carries a catalog code
// (401/400112, 429/400140, 503/400558) and turns any other into
// 503/400558.
func storeError(err error) error {
	if _, ok := sserrors.As(err); ok {
		return err
	}
	return errUnavailable.WithCause(err)
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// decode reads a JSON object body into v: an empty body is {}; a body that
// is not a JSON object is 40001; a value of the wrong type is 400175; a body
// over the limit is 413/400175; one not all there by the body read deadline
// is 408/400175.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errBodyTooLarge
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errBodyTimeout.WithCause(err)
		}
		return sserrors.ErrMissingParams.WithCause(err)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if body[0] != '{' {
		return sserrors.ErrMissingParams
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return sserrors.ErrInvalidParameter
		}
		return sserrors.ErrMissingParams
	}
	return nil
}

// named checks the session id a call names: present (40001), and the bearer
// token's own session (401/400112).
func (req *request) named(id *string) (string, error) {
	if id == nil || *id == "" {
		return "", sserrors.ErrMissingParams
	}
	req.sessionID = *id
	if req.token != "" && req.bound != *id {
		return "", sserrors.ErrUnauthorized
	}
	return *id, nil
}

// oneOf reports whether v is empty or one of allowed, ignoring case.
func oneOf(v string, allowed ...string) bool {
	if v == "" {
		return true
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return true
		}
	}
	return false
}

func (s *Server) createToken(r *http.Request, req *request) (any, error) {
	var body struct{}
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	token, err := s.tokens.Mint(r.Context(), req.account)
	if err != nil {
		return nil, storeError(err)
	}
	return tokenData(token), nil
}

type newRequest struct {
	AvatarID   string `json:"avatar_id"`
	AvatarName string `json:"avatar_name"`
	Quality    string `json:"quality"`
	Voice      *struct {
		VoiceID string   `json:"voice_id"`
		Rate    *float64 `json:"rate"`
		Emotion string   `json:"emotion"`
	} `json:"voice"`
	VideoEncoding       string `json:"video_encoding"`
	KnowledgeBase       string `json:"knowledge_base"`
	KnowledgeBaseID     string `json:"knowledge_base_id"`
	Version             string `json:"version"`
	DisableIdleTimeout  bool   `json:"disable_idle_timeout"`
	ActivityIdleTimeout *int   `json:"activity_idle_timeout"`
}

func (b *newRequest) validate() error {
	if !oneOf(b.Quality, "high", "medium", "low") ||
		!oneOf(b.VideoEncoding, "H264", "VP8") {
		return sserrors.ErrInvalidParameter
	}
	if v := b.Voice; v != nil {
		if v.Rate != nil && (*v.Rate < 0.5 || *v.Rate > 1.5) {
			return sserrors.ErrInvalidParameter
		}
		if !oneOf(v.Emotion, "excited", "serious", "friendly", "soothing", "broadcaster") {
			return sserrors.ErrInvalidParameter
		}
	}
	if t := b.ActivityIdleTimeout; t != nil && (*t < int(session.MinIdleTimeout/time.Second) || *t > int(session.MaxIdleTimeout/time.Second)) {
		return sserrors.ErrInvalidParameter
	}
	return nil
}

type newResponse struct {
	SessionID            string `json:"session_id"`
	AccessToken          string `json:"access_token"`
	RealtimeEndpoint     string `json:"realtime_endpoint"`
	URL                  string `json:"url"`
	IsPaid               bool   `json:"is_paid"`
	SessionDurationLimit int64  `json:"session_duration_limit"`
}

func (s *Server) newSession(r *http.Request, req *request) (any, error) {
	var body newRequest
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	if err := body.validate(); err != nil {
		return nil, err
	}
	withMedia, err := s.wantsMedia(body.Version)
	if err != nil {
		return nil, err
	}
	opts := session.CreateOptions{AvatarID: body.AvatarID, DisableIdleTimeout: body.DisableIdleTimeout}
	if opts.AvatarID == "" {
		opts.AvatarID = body.AvatarName
	}
	if body.ActivityIdleTimeout != nil {
		opts.IdleTimeout = time.Duration(*body.ActivityIdleTimeout) * time.Second
	}
	info, err := s.create(r.Context(), req, opts)
	if err != nil {
		return nil, err
	}
	req.sessionID = info.ID
	token := s.access.mint(info.Account, info.ID)
	endpoint := s.realtimeURL(r, info.ID, token)
	resp := newResponse{
		SessionID:            info.ID,
		AccessToken:          token,
		RealtimeEndpoint:     endpoint,
		URL:                  endpoint,
		IsPaid:               info.Paid,
		SessionDurationLimit: int64(info.DurationLimit / time.Second),
	}
	if withMedia {
		return s.withOffer(r.Context(), info, resp)
	}
	return resp, nil
}

// create creates the caller's session. With a bearer token it spends the
// token on it, one streaming.new per token: Reserve holds the token (and
// names its account), the session is created, then Bind spends the token
// on it. When the session cannot be created the token is released unused;
// when the token cannot be bound (revoked or expired meanwhile, or the
// store failed), the session is stopped, freeing its slot, so that no
// session outlives its token unusable.
func (s *Server) create(ctx context.Context, req *request, opts session.CreateOptions) (session.Info, error) {
	if req.token == "" {
		return s.mgr.Create(ctx, req.account, opts)
	}
	hold, err := s.tokens.Reserve(ctx, req.token)
	if err != nil {
		return session.Info{}, storeError(err)
	}
	// What follows the reservation completes even if the caller goes away.
	bg := context.WithoutCancel(ctx)
	created := false
	defer func() {
		if !created { // Create panicked: give the token back
			_ = s.tokens.Release(bg, req.token, hold)
		}
	}()
	info, err := s.mgr.Create(ctx, hold.Account, opts)
	created = true
	if err != nil {
		if rerr := s.tokens.Release(bg, req.token, hold); rerr != nil {
			// The hold lapses by itself after the store's lease.
			return session.Info{}, errors.Join(err, storeError(rerr))
		}
		return session.Info{}, err
	}
	if err := s.tokens.Bind(bg, req.token, hold, info.ID); err != nil {
		_, serr := s.mgr.Stop(bg, info.Account, info.ID)
		return session.Info{}, errors.Join(storeError(err), serr)
	}
	return info, nil
}

// realtimeURL is the session's dialable realtime socket URL: under
// Config.BaseURL, else under the address the request's connection was
// accepted on. Nothing of the request's headers (Host, X-Forwarded-*)
// goes into it, so a caller cannot point it, or the answer replayed to
// the next caller of the same Idempotency-Key, elsewhere.
func (s *Server) realtimeURL(r *http.Request, id, token string) string {
	var b strings.Builder
	if s.base != nil {
		b.WriteString(s.base.String())
	} else {
		scheme := "ws"
		if r.TLS != nil {
			scheme = "wss"
		}
		host := "localhost"
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && a.String() != "" {
			host = a.String()
		}
		b.WriteString(scheme + "://" + host)
	}
	b.WriteString(PathRealtime)
	b.WriteString("?session_id=")
	b.WriteString(url.QueryEscape(id))
	b.WriteString("&session_token=")
	b.WriteString(url.QueryEscape(token))
	return b.String()
}

type sessionRequest struct {
	SessionID *string `json:"session_id"`
}

func (s *Server) start(r *http.Request, req *request) (any, error) {
	var body struct {
		sessionRequest
		SDP json.RawMessage `json:"sdp"` // v1 clients' SDP answer: ignored without a peer (Config.Media)
	}
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	id, err := req.named(body.SessionID)
	if err != nil {
		return nil, err
	}
	if a, handled, err := s.startMedia(r, req.account.Name, id, body.SDP); handled {
		return a, err
	}
	_, err = s.mgr.Start(r.Context(), req.account.Name, id)
	return nil, err
}

func (s *Server) ice(r *http.Request, req *request) (any, error) {
	var body struct {
		sessionRequest
		Candidate json.RawMessage `json:"candidate"`
	}
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	if len(body.Candidate) == 0 || string(body.Candidate) == "null" {
		return nil, sserrors.ErrMissingParams
	}
	id, err := req.named(body.SessionID)
	if err != nil {
		return nil, err
	}
	if _, err := s.mgr.Command(r.Context(), req.account.Name, id, fsm.CmdICE); err != nil {
		return nil, err
	}
	return s.iceMedia(r, req.account.Name, id, body.Candidate)
}

type taskResponse struct {
	TaskID     string `json:"task_id"`
	DurationMS int64  `json:"duration_ms"`
}

func (s *Server) task(r *http.Request, req *request) (any, error) {
	var body struct {
		sessionRequest
		Text     *string `json:"text"`
		TaskType string  `json:"task_type"`
		TaskMode string  `json:"task_mode"`
	}
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	if body.SessionID == nil || *body.SessionID == "" || body.Text == nil || strings.TrimSpace(*body.Text) == "" {
		return nil, sserrors.ErrMissingParams
	}
	if !oneOf(body.TaskType, "repeat", "chat", "talk") || !oneOf(body.TaskMode, "sync", "async") {
		return nil, sserrors.ErrInvalidParameter
	}
	id, err := req.named(body.SessionID)
	if err != nil {
		return nil, err
	}
	if _, err := s.mgr.Command(r.Context(), req.account.Name, id, fsm.CmdTask); err != nil {
		return nil, err
	}
	taskID, d, err := s.rt.Say(r.Context(), id, *body.Text)
	if err != nil {
		return nil, err
	}
	s.mediaSay(id, taskID, d)
	return taskResponse{TaskID: taskID, DurationMS: d.Milliseconds()}, nil
}

func (s *Server) interrupt(r *http.Request, req *request) (any, error) {
	id, err := s.decodeNamed(r, req)
	if err != nil {
		return nil, err
	}
	if _, err := s.mgr.Command(r.Context(), req.account.Name, id, fsm.CmdInterrupt); err != nil {
		return nil, err
	}
	s.mediaHush(id)
	return nil, s.rt.Hush(r.Context(), id)
}

// command serves the endpoints that only check the state (and count as
// activity): start_listening, stop_listening, keep_alive.
func (s *Server) command(cmd fsm.Command) func(*http.Request, *request) (any, error) {
	return func(r *http.Request, req *request) (any, error) {
		id, err := s.decodeNamed(r, req)
		if err != nil {
			return nil, err
		}
		_, err = s.mgr.Command(r.Context(), req.account.Name, id, cmd)
		return nil, err
	}
}

func (s *Server) stopSession(r *http.Request, req *request) (any, error) {
	id, err := s.decodeNamed(r, req)
	if err != nil {
		return nil, err
	}
	// The stop completes even if the caller goes away meanwhile.
	_, err = s.mgr.Stop(context.WithoutCancel(r.Context()), req.account.Name, id)
	return nil, err
}

func (s *Server) decodeNamed(r *http.Request, req *request) (string, error) {
	var body sessionRequest
	if err := decode(r, &body); err != nil {
		return "", err
	}
	return req.named(body.SessionID)
}

type listedSession struct {
	SessionID string `json:"session_id"`
	Status    string `json:"status"`
	CreatedAt int64  `json:"created_at"`
}

type listResponse struct {
	Sessions []listedSession `json:"sessions"`
}

func (s *Server) list(r *http.Request, req *request) (any, error) {
	infos, err := s.mgr.List(r.Context(), req.account.Name) // open sessions, oldest first
	if err != nil {
		return nil, err
	}
	out := listResponse{Sessions: make([]listedSession, 0, len(infos))}
	for _, i := range infos {
		if req.token != "" && i.ID != req.bound {
			continue // a bearer token sees its own session alone
		}
		out.Sessions = append(out.Sessions, listedSession{SessionID: i.ID, Status: i.State.String(), CreatedAt: i.CreatedAt.Unix()})
	}
	return out, nil
}

type listedAvatar struct {
	AvatarID     string  `json:"avatar_id"`
	DefaultVoice *string `json:"default_voice"`
	IsPublic     bool    `json:"is_public"`
	Status       string  `json:"status"`
}

func (s *Server) avatarList(r *http.Request, req *request) (any, error) {
	avatars, err := s.avatars.List(r.Context(), req.account.Name)
	if err != nil {
		return nil, err
	}
	out := make([]listedAvatar, 0, len(avatars))
	for _, a := range avatars {
		item := listedAvatar{AvatarID: a.ID, IsPublic: a.Public, Status: "INACTIVE"}
		if a.Active {
			item.Status = "ACTIVE"
		}
		if a.DefaultVoice != "" {
			voice := a.DefaultVoice
			item.DefaultVoice = &voice
		}
		out = append(out, item)
	}
	return out, nil
}
