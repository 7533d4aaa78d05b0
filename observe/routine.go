package observe

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MsgSuppressed is the line RoutineLimiter writes for an account whose
// routine lines it suppressed in a window.
const MsgSuppressed = "log lines suppressed"

// Defaults of [RoutineConfig].
const (
	DefaultRoutinePerWindow = 50
	DefaultRoutineWindow    = time.Second
	// maxRoutineAccounts bounds the accounts a window counts apart; the
	// others share one count, so the map cannot grow with the callers.
	maxRoutineAccounts = 10_000
)

// routineMessages are the per-request lines a busy or churning client
// produces: refusals and lifecycle.
var routineMessages = map[string]bool{
	MsgTransition:     true,
	MsgSessionRefused: true,
	MsgSocketOpened:   true,
	MsgSocketClosed:   true,
	MsgRequestRefused: true,
}

// RoutineConfig configures [NewRoutineLimiter]. Zero fields take the
// documented defaults.
type RoutineConfig struct {
	// PerWindow is how many routine lines one account may write in a
	// Window. The default is DefaultRoutinePerWindow (50).
	PerWindow int
	// Window is the period of PerWindow. The default is
	// DefaultRoutineWindow (1 s).
	Window time.Duration
	// Now is the clock. The default is time.Now.
	Now func() time.Time
}

// RoutineLimiter is a slog.Handler that bounds, per account, the routine
// lines of this package's hooks (transitions, refusals, sockets opened and
// closed; lines below Warn): at most PerWindow per account in a window,
// the rest dropped. For each account that lost lines in a window, one line
// MsgSuppressed (account, suppressed, window) is written at Info with the
// next line handled after that window, so a churning client cannot fill a
// disk and the log still says it churned. Other lines pass unchanged.
// Accounts are read from each record's "account" attribute (attributes
// added with WithAttrs are not looked at). Unauthenticated callers share
// the account "".
//
// A RoutineLimiter is safe for concurrent use by multiple goroutines;
// handlers derived with WithAttrs and WithGroup share its counts.
type RoutineLimiter struct {
	inner slog.Handler
	s     *routineState
}

// routineState is what a RoutineLimiter and the handlers derived from it
// share.
type routineState struct {
	perWindow  int
	window     time.Duration
	now        func() time.Time
	suppressed atomic.Uint64
	// summary is the handler the MsgSuppressed lines are written to: the
	// root's, without the attributes or group of a derived handler.
	summary slog.Handler

	mu     sync.Mutex
	start  time.Time // of the current window
	counts map[string]int
	over   map[string]int // suppressed in the current window
}

// NewRoutineLimiter returns a RoutineLimiter over inner.
func NewRoutineLimiter(inner slog.Handler, cfg RoutineConfig) *RoutineLimiter {
	if cfg.PerWindow <= 0 {
		cfg.PerWindow = DefaultRoutinePerWindow
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultRoutineWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &RoutineLimiter{inner: inner, s: &routineState{
		perWindow: cfg.PerWindow, window: cfg.Window, now: cfg.Now, summary: inner,
		counts: make(map[string]int), over: make(map[string]int),
	}}
}

// Enabled reports whether the handler underneath handles level.
func (h *RoutineLimiter) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle passes r on unless it is a routine line over its account's
// bound.
func (h *RoutineLimiter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn || !routineMessages[r.Message] {
		return h.inner.Handle(ctx, r)
	}
	account := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "account" {
			account = a.Value.String()
			return false
		}
		return true
	})
	pass, ended, endedAt := h.s.take(account)
	for acct, n := range ended {
		line := slog.NewRecord(endedAt, slog.LevelInfo, MsgSuppressed, 0)
		line.AddAttrs(slog.String("account", acct), slog.Int("suppressed", n), slog.Duration("window", h.s.window))
		_ = h.s.summary.Handle(ctx, line)
	}
	if !pass {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

// take counts a routine line of account and says whether it passes; when
// it opens a new window, it returns the suppressed counts of the window
// that ended, and when that window ended.
func (s *routineState) take(account string) (pass bool, ended map[string]int, endedAt time.Time) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.start) >= s.window || now.Before(s.start) {
		if len(s.over) > 0 {
			ended, endedAt = s.over, s.start.Add(s.window)
			s.over = make(map[string]int)
		}
		clear(s.counts)
		s.start = now
	}
	if _, ok := s.counts[account]; !ok && len(s.counts) >= maxRoutineAccounts {
		account = "(other accounts)"
	}
	s.counts[account]++
	if s.counts[account] <= s.perWindow {
		return true, ended, endedAt
	}
	s.over[account]++
	s.suppressed.Add(1)
	return false, ended, endedAt
}

// WithAttrs returns a RoutineLimiter over inner.WithAttrs(attrs), sharing
// h's counts.
func (h *RoutineLimiter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &RoutineLimiter{inner: h.inner.WithAttrs(attrs), s: h.s}
}

// WithGroup returns a RoutineLimiter over inner.WithGroup(name), sharing
// h's counts.
func (h *RoutineLimiter) WithGroup(name string) slog.Handler {
	return &RoutineLimiter{inner: h.inner.WithGroup(name), s: h.s}
}

// Suppressed returns how many routine lines were dropped so far.
func (h *RoutineLimiter) Suppressed() uint64 { return h.s.suppressed.Load() }

// Collector returns a counter, streamsession_log_records_suppressed_total,
// reading Suppressed, for a Prometheus registry.
func (h *RoutineLimiter) Collector() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "streamsession_log_records_suppressed_total",
		Help: "Routine log lines (refusals, lifecycle) dropped because their account was over its log bound.",
	}, func() float64 { return float64(h.s.suppressed.Load()) })
}
