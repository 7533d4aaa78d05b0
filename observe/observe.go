package observe

import (
	"context"
	"log/slog"
	"strings"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// The messages of the log lines, for filtering.
const (
	MsgTransition       = "session transition"
	MsgSessionRefused   = "session refused"
	MsgLimiterFailed    = "limiter call failed"
	MsgBackgroundFailed = "background work failed"
	MsgSocketOpened     = "realtime socket opened"
	MsgSocketClosed     = "realtime socket closed"
	MsgRequestRefused   = "request refused"
	MsgAnnounceFailed   = "realtime socket not announced"
)

// SessionRef returns the label under which logs name a session: the first
// 12 hex digits of the SHA-256 of id (48 bits: distinct for every session a
// node holds, and not reversible to the id, which is 128 random bits). It
// is session.ShortHash, so lines from both hook sets correlate. An empty id
// gives "".
func SessionRef(id string) string { return session.ShortHash(id) }

// SessionHooks returns hooks that log, on logger (slog.Default() when nil),
// one line per transition, per refused session creation and per failed
// limiter call:
//
//	"session transition": account, session (SessionRef), from, to, epoch, reason
//	"session refused":     account, code, message; at Warn when the service failed (5xx, 400558), else Info
//	"limiter call failed": op, duration, code, error (redacted), at Warn
//	"background work failed": op, code, error (redacted), at Error
//
// A line never carries a raw session id, a token or an API key: sessions
// are named by SessionRef, refusals by the catalog's message for the code
// (never an error's cause), and the text of a limiter error has every run
// of 20 or more letters, digits, '-' or '_' (ids, keys, tokens) replaced by
// "[redacted]".
//
// The hooks call the logger synchronously, and the Manager calls
// OnTransition while the session is locked: with a handler that may block
// (a full pipe, a remote sink), leave OnTransition out of session.Config
// and pass it to Manager.Subscribe instead, which calls it, in each
// session's order, on the subscription's own goroutine.
func SessionHooks(logger *slog.Logger) session.Hooks {
	if logger == nil {
		logger = slog.Default()
	}
	return session.Hooks{
		OnTransition: func(e session.Event) {
			logger.LogAttrs(context.Background(), slog.LevelInfo, MsgTransition,
				slog.String("account", e.Account),
				slog.String("session", SessionRef(e.SessionID)),
				slog.String("from", e.From.String()),
				slog.String("to", e.To.String()),
				slog.Uint64("epoch", e.Epoch),
				slog.String("reason", e.Reason.String()),
			)
		},
		OnRefused: func(acct session.Account, code sserrors.Code) {
			message, level := describe(code)
			logger.LogAttrs(context.Background(), level, MsgSessionRefused,
				slog.String("account", acct.Name),
				slog.Int("code", int(code)),
				slog.String("message", message),
			)
		},
		OnLimiter: func(op session.LimiterOp, d time.Duration, err error) {
			if err == nil {
				return
			}
			logger.LogAttrs(context.Background(), slog.LevelWarn, MsgLimiterFailed,
				slog.String("op", op.String()),
				slog.Duration("duration", d),
				slog.Int("code", int(sserrors.CodeOf(err))),
				slog.String("error", Redact(err.Error())),
			)
		},
		OnBackgroundError: func(op session.BackgroundOp, err error) {
			logger.LogAttrs(context.Background(), slog.LevelError, MsgBackgroundFailed,
				slog.String("op", op.String()),
				slog.Int("code", int(sserrors.CodeOf(err))),
				slog.String("error", Redact(err.Error())),
			)
		},
	}
}

// ServerHooks returns hooks that log, on logger (slog.Default() when nil),
// one line per realtime socket opened and closed and per request the
// server refused:
//
//	"realtime socket opened": account, session
//	"realtime socket closed": account, session
//	"request refused":        endpoint (redacted), account, session, code, status, message
//
// session is session.ShortHash of the id (equal to SessionRef), omitted when the
// request named none; account is empty when the caller was not
// authenticated. A refused streaming.new is logged here as a request and by
// SessionHooks as a session refusal (when the Manager was called): the two
// lines say which layer refused. Refusals are at Info, or at Warn for a 5xx
// status. The same guarantees as SessionHooks hold: no raw id, token or
// API key.
func ServerHooks(logger *slog.Logger) server.Hooks {
	if logger == nil {
		logger = slog.Default()
	}
	return server.Hooks{
		SocketOpened: func(s realtime.SocketInfo) {
			logger.LogAttrs(context.Background(), slog.LevelInfo, MsgSocketOpened,
				slog.String("account", s.Account.Name), slog.String("session", s.SessionHash))
		},
		SocketClosed: func(s realtime.SocketInfo) {
			logger.LogAttrs(context.Background(), slog.LevelInfo, MsgSocketClosed,
				slog.String("account", s.Account.Name), slog.String("session", s.SessionHash))
		},
		Refused: func(r server.Refusal) {
			message, _ := describe(r.Code)
			level := slog.LevelInfo
			if r.Status >= 500 {
				level = slog.LevelWarn
			}
			attrs := make([]slog.Attr, 0, 6)
			attrs = append(attrs,
				slog.String("endpoint", Redact(r.Endpoint)),
				slog.String("account", r.Account.Name))
			if r.SessionHash != "" {
				attrs = append(attrs, slog.String("session", r.SessionHash))
			}
			attrs = append(attrs,
				slog.Int("code", int(r.Code)),
				slog.Int("status", r.Status),
				slog.String("message", message))
			logger.LogAttrs(context.Background(), level, MsgRequestRefused, attrs...)
		},
		AnnounceFailed: func(f realtime.AnnounceFailure) {
			logger.LogAttrs(context.Background(), slog.LevelWarn, MsgAnnounceFailed,
				slog.String("account", f.Account.Name), slog.String("session", f.SessionHash),
				slog.String("error", Redact(errString(f.Err))))
		},
	}
}

// errString is err's message, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// describe returns the catalog's message for code and the level of a
// refusal with it: Warn when the service failed (a 5xx status, or 400558,
// which the catalog sends as 400 but the Manager uses for an unreachable
// limiter) or the code is not in the catalog, else Info.
func describe(code sserrors.Code) (string, slog.Level) {
	e, ok := sserrors.LookupEntry(code)
	switch {
	case !ok:
		return "", slog.LevelWarn
	case e.Status >= 500, code == sserrors.CodeAPIConnectionError:
		return e.Message, slog.LevelWarn
	}
	return e.Message, slog.LevelInfo
}

// redactMin is the shortest run of token characters Redact hides: shorter
// than a session id (32 hex digits), an access token's parts or a bearer
// token, longer than the words of an error message or an endpoint.
const redactMin = 20

// Redact returns s with every run of redactMin (20) or more ASCII letters,
// digits, '-' and '_' replaced by "[redacted]": the shape of session ids,
// tokens and generated keys, which must not reach a log through free text
// (an error message, a request path).
func Redact(s string) string {
	var b strings.Builder
	start, last := 0, 0 // start of the current run; end of what is copied
	for i := 0; i <= len(s); i++ {
		if i < len(s) && tokenByte(s[i]) {
			continue
		}
		if i-start >= redactMin {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:start])
			b.WriteString("[redacted]")
			last = i
		}
		start = i + 1
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// JoinHooks returns hooks that call, for each hook, every non-nil one of
// hooks in argument order; a hook none of them sets stays nil (so the
// Manager skips its work, such as timing the limiter calls). The result is
// as safe for concurrent use as the hooks joined.
func JoinHooks(hooks ...session.Hooks) session.Hooks {
	var (
		onTransition []func(session.Event)
		onRefused    []func(session.Account, sserrors.Code)
		onLimiter    []func(session.LimiterOp, time.Duration, error)
		onBackground []func(session.BackgroundOp, error)
		onClosed     []func(session.Info)
	)
	for _, h := range hooks {
		onTransition = collect(onTransition, h.OnTransition)
		onClosed = collect(onClosed, h.OnClosed)
		if h.OnRefused != nil {
			onRefused = append(onRefused, h.OnRefused)
		}
		if h.OnLimiter != nil {
			onLimiter = append(onLimiter, h.OnLimiter)
		}
		if h.OnBackgroundError != nil {
			onBackground = append(onBackground, h.OnBackgroundError)
		}
	}
	j := session.Hooks{OnTransition: fanOut(onTransition), OnClosed: fanOut(onClosed)}
	switch len(onRefused) {
	case 0:
	case 1:
		j.OnRefused = onRefused[0]
	default:
		j.OnRefused = func(acct session.Account, code sserrors.Code) {
			for _, f := range onRefused {
				f(acct, code)
			}
		}
	}
	switch len(onLimiter) {
	case 0:
	case 1:
		j.OnLimiter = onLimiter[0]
	default:
		j.OnLimiter = func(op session.LimiterOp, d time.Duration, err error) {
			for _, f := range onLimiter {
				f(op, d, err)
			}
		}
	}
	switch len(onBackground) {
	case 0:
	case 1:
		j.OnBackgroundError = onBackground[0]
	default:
		j.OnBackgroundError = func(op session.BackgroundOp, err error) {
			for _, f := range onBackground {
				f(op, err)
			}
		}
	}
	return j
}

// JoinServerHooks is JoinHooks for server.Hooks.
func JoinServerHooks(hooks ...server.Hooks) server.Hooks {
	var opened, closed []func(realtime.SocketInfo)
	var refused []func(server.Refusal)
	var unannounced []func(realtime.AnnounceFailure)
	for _, h := range hooks {
		opened = collect(opened, h.SocketOpened)
		closed = collect(closed, h.SocketClosed)
		refused = collect(refused, h.Refused)
		unannounced = collect(unannounced, h.AnnounceFailed)
	}
	return server.Hooks{
		SocketOpened:   fanOut(opened),
		SocketClosed:   fanOut(closed),
		Refused:        fanOut(refused),
		AnnounceFailed: fanOut(unannounced),
	}
}

func collect[T any](fs []func(T), f func(T)) []func(T) {
	if f == nil {
		return fs
	}
	return append(fs, f)
}

// fanOut returns nil for no function, the function itself for one, and a
// function calling each in order for more.
func fanOut[T any](fs []func(T)) func(T) {
	switch len(fs) {
	case 0:
		return nil
	case 1:
		return fs[0]
	}
	return func(v T) {
		for _, f := range fs {
			f(v)
		}
	}
}
