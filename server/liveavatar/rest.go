package liveavatar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// readObject reads a JSON object body into fields: an empty body is {}; a
// body that is not a JSON object is a 422 at ("body"); an oversized body is
// 413/400175; one not all there by the server's deadline is 408/400175.
func readObject(r *http.Request) (map[string]json.RawMessage, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return nil, errBodyTooLarge
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, sserrors.ErrInvalidParameter.WithStatus(http.StatusRequestTimeout).WithCause(err)
		}
		return nil, sserrors.ErrInvalidParameter.WithCause(err)
	}
	fields := map[string]json.RawMessage{}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return fields, nil
	}
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		v := &validationError{}
		v.add("json_invalid", "JSON decode error: the body must be a JSON object", "body")
		return nil, v
	}
	return fields, nil
}

// fieldReader reads typed fields out of a JSON object, recording a 422
// entry for each field of the wrong type or value.
type fieldReader struct {
	fields map[string]json.RawMessage
	path   []any
	v      *validationError
}

func (f *fieldReader) loc(name string) []any {
	return append(append([]any{}, f.path...), name)
}

func (f *fieldReader) present(name string) bool {
	raw, ok := f.fields[name]
	return ok && string(raw) != "null"
}

func (f *fieldReader) missing(name string) {
	f.v.add("missing", "Field required", f.loc(name)...)
}

// str reads a string field; required records a missing one.
func (f *fieldReader) str(name string, required bool) string {
	if !f.present(name) {
		if required {
			f.missing(name)
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(f.fields[name], &s); err != nil {
		f.v.add("string_type", "Input should be a valid string", f.loc(name)...)
		return ""
	}
	if required && s == "" {
		f.v.add("string_too_short", "String should have at least 1 character", f.loc(name)...)
	}
	return s
}

// enum reads a string field that must be one of allowed.
func (f *fieldReader) enum(name string, required bool, allowed ...string) string {
	had := len(f.v.Detail)
	s := f.str(name, required)
	if s == "" || len(f.v.Detail) != had {
		return s
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	f.v.add("enum", "Input should be "+quoteList(allowed), f.loc(name)...)
	return ""
}

func quoteList(allowed []string) string {
	q := make([]string, len(allowed))
	for i, a := range allowed {
		q[i] = "'" + a + "'"
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func (f *fieldReader) boolean(name string) bool {
	if !f.present(name) {
		return false
	}
	var b bool
	if err := json.Unmarshal(f.fields[name], &b); err != nil {
		f.v.add("bool_type", "Input should be a valid boolean", f.loc(name)...)
	}
	return b
}

// positiveInt reads an integer field from 1 to hi; 0 when absent.
func (f *fieldReader) positiveInt(name string, hi int64) int64 {
	if !f.present(name) {
		return 0
	}
	var n int64
	if err := json.Unmarshal(f.fields[name], &n); err != nil {
		f.v.add("int_type", "Input should be a valid integer", f.loc(name)...)
		return 0
	}
	if n <= 0 {
		f.v.add("greater_than", "Input should be greater than 0", f.loc(name)...)
		return 0
	}
	if n > hi {
		f.v.add("less_than_equal", "Input should be less than or equal to "+strconv.FormatInt(hi, 10), f.loc(name)...)
		return 0
	}
	return n
}

// object reads an object field into a reader of its own fields; nil when
// absent (required records it) or not an object.
func (f *fieldReader) object(name string, required bool) *fieldReader {
	if !f.present(name) {
		if required {
			f.missing(name)
		}
		return nil
	}
	inner := map[string]json.RawMessage{}
	if err := json.Unmarshal(f.fields[name], &inner); err != nil || inner == nil {
		f.v.add("model_type", "Input should be a valid dictionary or object", f.loc(name)...)
		return nil
	}
	return &fieldReader{fields: inner, path: f.loc(name), v: f.v}
}

// tokenRequest is what POST /v1/sessions/token asks for.
type tokenRequest struct {
	mode        string
	avatarID    string
	maxDuration time.Duration
	sandbox     bool
}

// parseTokenRequest validates a token request as LiveAvatar documents it:
// mode (LITE or FULL) and avatar_id are required; FULL needs
// avatar_persona; video_settings, interactivity_type and livekit_config
// (all three fields or none) are checked when present. Fields it does not
// know are ignored.
func parseTokenRequest(fields map[string]json.RawMessage) (tokenRequest, error) {
	f := &fieldReader{fields: fields, path: []any{"body"}, v: &validationError{}}
	var req tokenRequest
	req.mode = f.enum("mode", true, ModeFull, ModeLite)
	req.avatarID = f.str("avatar_id", true)
	req.sandbox = f.boolean("is_sandbox")
	req.maxDuration = time.Duration(f.positiveInt("max_session_duration", MaxSessionDuration)) * time.Second
	if vs := f.object("video_settings", false); vs != nil {
		vs.enum("quality", false, "very_high", "high", "medium", "low")
		vs.enum("encoding", false, "VP8", "H264")
	}
	switch req.mode {
	case ModeFull:
		if p := f.object("avatar_persona", true); p != nil {
			p.str("voice_id", false)
			p.str("context_id", false)
			p.str("language", false)
		}
		f.enum("interactivity_type", false, "CONVERSATIONAL", "PUSH_TO_TALK")
	case ModeLite:
		if lk := f.object("livekit_config", false); lk != nil {
			lk.str("livekit_url", true)
			lk.str("livekit_room", true)
			lk.str("livekit_client_token", true)
		}
	}
	return req, f.v.err()
}

type tokenResponse struct {
	SessionID    string `json:"session_id"`
	SessionToken string `json:"session_token"`
}

// createToken serves POST /v1/sessions/token: a new session (state new)
// under the account's limits, and its session token.
func (h *Handler) createToken(r *http.Request, c caller) (int, any, error) {
	fields, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	req, err := parseTokenRequest(fields)
	if err != nil {
		return 0, nil, err
	}
	acct := c.plan
	limit := acct.Plan.SessionDurationLimit
	for _, d := range []time.Duration{req.maxDuration, sandboxLimit(req.sandbox)} {
		if d > 0 && (limit == 0 || d < limit) {
			limit = d
		}
	}
	acct.Plan.SessionDurationLimit = limit
	info, err := h.mgr.Create(r.Context(), acct, session.CreateOptions{
		AvatarID: req.avatarID, IdleTimeout: IdleTimeout, Label: sessionLabel(req.mode, req.sandbox),
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, tokenResponse{
		SessionID:    info.ID,
		SessionToken: h.keys.mintToken(info.Account, info.ID, req.mode, req.sandbox, h.now()),
	}, nil
}

func sandboxLimit(sandbox bool) time.Duration {
	if sandbox {
		return SandboxDuration
	}
	return 0
}

// sessionOf returns the session a call is about: body's session_id,
// required with an API key; with a session token it may be left out and
// must otherwise be the token's own (else 401/400112).
func sessionOf(c caller, f *fieldReader) (string, error) {
	id := f.str("session_id", false)
	if err := f.v.err(); err != nil {
		return "", err
	}
	switch {
	case c.bearer() && (id == "" || id == c.token.SessionID):
		return c.token.SessionID, nil
	case c.bearer():
		return "", sserrors.ErrUnauthorized
	case id == "":
		f.missing("session_id")
		return "", f.v
	}
	return id, nil
}

type startResponse struct {
	SessionID          string `json:"session_id"`
	WSURL              string `json:"ws_url"`
	MaxSessionDuration *int64 `json:"max_session_duration"`
}

// start serves POST /v1/sessions/start (session token only): new →
// connecting, and the ws_url of the session's LITE socket. A FULL token is
// refused (501/4501) and its session left new, for a stop to close.
func (h *Handler) start(r *http.Request, c caller) (int, any, error) {
	if !c.bearer() {
		return 0, nil, sserrors.ErrUnauthorized
	}
	fields, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	id, err := sessionOf(c, &fieldReader{fields: fields, path: []any{"body"}, v: &validationError{}})
	if err != nil {
		return 0, nil, err
	}
	if c.token.Mode == ModeFull {
		return 0, nil, errFullUnsupported
	}
	info, err := h.mgr.Start(r.Context(), c.account, id)
	if err != nil {
		return 0, nil, err
	}
	out := startResponse{SessionID: id, WSURL: h.socketURL(r, id, h.keys.socketCredential(c.account, id))}
	if info.DurationLimit > 0 {
		secs := int64(info.DurationLimit / time.Second)
		out.MaxSessionDuration = &secs
	}
	return http.StatusCreated, out, nil
}

// socketURL is the dialable URL of the session's LITE socket.
func (h *Handler) socketURL(r *http.Request, id, credential string) string {
	var b strings.Builder
	if h.base != nil {
		b.WriteString(h.base.String())
	} else {
		scheme := "ws"
		proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
		if r.TLS != nil || strings.EqualFold(strings.TrimSpace(proto), "https") {
			scheme = "wss"
		}
		host := r.Host
		if host == "" {
			host = "localhost"
		}
		b.WriteString(scheme + "://" + host)
	}
	b.WriteString(strings.Replace(PathSocket, "{id}", url.PathEscape(id), 1))
	b.WriteString("?credential=")
	b.WriteString(url.QueryEscape(credential))
	return b.String()
}

// stopReasons maps LiveAvatar's stop reasons to the session's.
var stopReasons = map[string]session.Reason{
	"UNKNOWN":              session.ReasonStop,
	"USER_CLOSED":          session.ReasonStop,
	"USER_DISCONNECTED":    session.ReasonUserDisconnected,
	"AGENT_HANG_UP":        session.ReasonAgentHangUp,
	"SERVER_ERROR":         session.ReasonStop,
	"IDLE_TIMEOUT":         session.ReasonStop,
	"NO_CREDITS":           session.ReasonStop,
	"AVATAR_DELETED":       session.ReasonStop,
	"MAX_DURATION_REACHED": session.ReasonStop,
	"ZOMBIE_SESSION_REAP":  session.ReasonStop,
}

// stopReasonNames lists stopReasons' keys in LiveAvatar's order.
var stopReasonNames = []string{"UNKNOWN", "USER_DISCONNECTED", "SERVER_ERROR", "IDLE_TIMEOUT", "NO_CREDITS",
	"USER_CLOSED", "AVATAR_DELETED", "MAX_DURATION_REACHED", "ZOMBIE_SESSION_REAP", "AGENT_HANG_UP"}

// CloseReason is the LiveAvatar name of the reason a session closed
// ("USER_CLOSED", "IDLE_TIMEOUT", ...), "" while it is open.
func CloseReason(r session.Reason) string {
	switch r {
	case session.ReasonNone:
		return ""
	case session.ReasonStop:
		return "USER_CLOSED"
	case session.ReasonUserDisconnected:
		return "USER_DISCONNECTED"
	case session.ReasonAgentHangUp:
		return "AGENT_HANG_UP"
	case session.ReasonIdle:
		return "IDLE_TIMEOUT"
	case session.ReasonDuration:
		return "MAX_DURATION_REACHED"
	case session.ReasonJoin:
		return "ZOMBIE_SESSION_REAP"
	}
	return "SERVER_ERROR" // shutdown, a lost slot
}

// stop serves POST /v1/sessions/stop (API key with session_id, or session
// token): open → closing → closed with the reason given (default
// UNKNOWN). A session already closing or closed answers success, so that
// the web SDK's stop after a failed start, after the server closed the
// socket, or twice, resolves.
func (h *Handler) stop(r *http.Request, c caller) (int, any, error) {
	fields, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	f := &fieldReader{fields: fields, path: []any{"body"}, v: &validationError{}}
	name := f.enum("reason", false, stopReasonNames...)
	id, err := sessionOf(c, f)
	if err != nil {
		return 0, nil, err
	}
	reason := session.ReasonStop
	if name != "" {
		reason = stopReasons[name]
	}
	// The stop completes even if the caller goes away meanwhile.
	_, err = h.mgr.StopWithReason(context.WithoutCancel(r.Context()), c.account, id, reason)
	if errors.Is(err, sserrors.ErrSessionStateClosing) || errors.Is(err, sserrors.ErrSessionStateClosed) {
		err = nil
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, nil, nil
}

// keepAlive serves POST /v1/sessions/keep-alive: pushes a connected
// session's idle deadline back; other states answer their 10001–10005.
func (h *Handler) keepAlive(r *http.Request, c caller) (int, any, error) {
	fields, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	id, err := sessionOf(c, &fieldReader{fields: fields, path: []any{"body"}, v: &validationError{}})
	if err != nil {
		return 0, nil, err
	}
	if _, err := h.mgr.Command(r.Context(), c.account, id, fsm.CmdKeepAlive); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, nil, nil
}

// listedSession is one session in LiveAvatar's listing shape, with the
// state and close reason (ours) beside it. mode and is_sandbox come from
// the session's label (null for a session created through the Streaming
// API); source is null (LiveAvatar documents no values for it).
type listedSession struct {
	ID              string  `json:"id"`
	CreatedAt       string  `json:"created_at"`
	UpdatedAt       string  `json:"updated_at"`
	Duration        int64   `json:"duration"`
	Source          *string `json:"source"`
	Mode            *string `json:"mode"`
	IsSandbox       *bool   `json:"is_sandbox"`
	CreditsConsumed float64 `json:"credits_consumed"`
	State           string  `json:"state"`
	CloseReason     *string `json:"close_reason"`
}

// listed is i in the listing shape, as c sees it.
func (h *Handler) listed(c caller, i session.Info) listedSession {
	updated := i.CreatedAt
	for _, t := range []time.Time{i.StartedAt, i.LastActivity, i.ClosedAt} {
		if t.After(updated) {
			updated = t
		}
	}
	var d time.Duration
	switch {
	case i.StartedAt.IsZero():
	case !i.ClosedAt.IsZero():
		d = i.ClosedAt.Sub(i.StartedAt)
	default:
		d = h.now().Sub(i.StartedAt)
	}
	out := listedSession{
		ID:        i.ID,
		CreatedAt: i.CreatedAt.UTC().Format(time.RFC3339),
		UpdatedAt: updated.UTC().Format(time.RFC3339),
		Duration:  int64(max(d, 0) / time.Second),
		State:     i.State.String(),
	}
	if name := CloseReason(i.Reason); name != "" {
		out.CloseReason = &name
	}
	if mode, sandbox, ok := parseSessionLabel(i.Label); ok {
		out.Mode, out.IsSandbox = &mode, &sandbox
	} else if c.bearer() && c.token.SessionID == i.ID {
		mode := c.token.Mode
		out.Mode, out.IsSandbox = &mode, c.token.Sandbox
	}
	return out
}

type listResponse struct {
	Count    int             `json:"count"`
	Results  []listedSession `json:"results"`
	Next     *string         `json:"next"`
	Previous *string         `json:"previous"`
}

// list serves GET /v1/sessions?type=active|historic&page&page_size. Active
// sessions (new, connecting, connected; both surfaces') come oldest first;
// historic ones (closed, still kept by the store: at most its bound per
// account within the retention window, and at most MaxHistoric) newest
// close first. A session token lists its own session only.
func (h *Handler) list(r *http.Request, c caller) (int, any, error) {
	q := r.URL.Query()
	f := &fieldReader{fields: map[string]json.RawMessage{}, path: []any{"query"}, v: &validationError{}}
	for _, name := range []string{"type"} {
		if v, ok := q[name]; ok {
			raw, _ := json.Marshal(v[0])
			f.fields[name] = raw
		}
	}
	typ := f.enum("type", true, "active", "historic")
	page := queryInt(q, "page", 1, 1, 1<<30, f)
	size := queryInt(q, "page_size", 20, 1, 100, f)
	if err := f.v.err(); err != nil {
		return 0, nil, err
	}
	var (
		all []session.Info
		err error
	)
	if typ == "active" {
		all, err = h.mgr.List(r.Context(), c.account)
	} else {
		all, err = h.mgr.ListClosed(r.Context(), c.account, MaxHistoric)
		if errors.Is(err, session.ErrNoClosedList) {
			all, err = nil, nil
		}
	}
	if err != nil {
		return 0, nil, err
	}
	var infos []session.Info
	for _, i := range all {
		if !c.bearer() || i.ID == c.token.SessionID {
			infos = append(infos, i)
		}
	}
	out := listResponse{Count: len(infos), Results: []listedSession{}}
	from := min((page-1)*size, len(infos))
	to := min(from+size, len(infos))
	for _, i := range infos[from:to] {
		out.Results = append(out.Results, h.listed(c, i))
	}
	link := func(p int) *string {
		u := *r.URL
		v := u.Query()
		v.Set("page", strconv.Itoa(p))
		v.Set("page_size", strconv.Itoa(size))
		u.RawQuery = v.Encode()
		s := u.RequestURI()
		return &s
	}
	if to < len(infos) {
		out.Next = link(page + 1)
	}
	if page > 1 && from > 0 {
		out.Previous = link(page - 1)
	}
	return http.StatusOK, out, nil
}

// queryInt reads an integer query parameter within [lo, hi], def when
// absent, recording a 422 entry otherwise.
func queryInt(q url.Values, name string, def, lo, hi int, f *fieldReader) int {
	v, ok := q[name]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v[0])
	switch {
	case err != nil:
		f.v.add("int_parsing", "Input should be a valid integer, unable to parse string as an integer", "query", name)
	case n < lo:
		f.v.add("greater_than_equal", "Input should be greater than or equal to "+strconv.Itoa(lo), "query", name)
	case n > hi:
		f.v.add("less_than_equal", "Input should be less than or equal to "+strconv.Itoa(hi), "query", name)
	default:
		return n
	}
	return def
}

// get serves GET /v1/sessions/{id}: one session, open or closed (while
// retained); a session token sees its own session only.
func (h *Handler) get(r *http.Request, c caller) (int, any, error) {
	id := r.PathValue("id")
	if c.bearer() && id != c.token.SessionID {
		return 0, nil, sserrors.ErrUnauthorized
	}
	info, err := h.mgr.Get(r.Context(), c.account, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, h.listed(c, info), nil
}
