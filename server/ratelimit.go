package server

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/session"
)

// RateLimit is one account's request budget: PerSecond requests a second on
// average, up to Burst at once (a token bucket, or the equivalent GCRA). It
// is a plain value.
type RateLimit struct {
	// PerSecond is the sustained rate. Zero, less or +Inf means unlimited.
	PerSecond float64
	// Burst is how many requests may arrive at once after a quiet spell.
	// Zero (or less) takes ceil(PerSecond).
	Burst int
}

// Unlimited reports whether l sets no budget.
func (l RateLimit) Unlimited() bool { return !(l.PerSecond > 0) || math.IsInf(l.PerSecond, 1) }

// EffectiveBurst is Burst, or ceil(PerSecond) (at least 1) when Burst is
// not set.
func (l RateLimit) EffectiveBurst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	if l.PerSecond >= math.MaxInt32 {
		return math.MaxInt32
	}
	return max(1, int(math.Ceil(l.PerSecond)))
}

// RateDecision is a [RateLimiter]'s answer about one request. It is a plain
// value.
type RateDecision struct {
	// Allowed reports whether the request passes; it then took one request
	// from the budget.
	Allowed bool
	// RetryAfter, when the request is refused, is how long until one request
	// would pass. A refusal takes nothing from the budget.
	RetryAfter time.Duration
}

// RateLimiter keeps the request budgets of accounts. Implementations are
// safe for concurrent use by multiple goroutines: the in-memory
// [MemoryRateLimiter], and server/redisrate for a budget shared by every
// node on one Redis.
type RateLimiter interface {
	// Allow takes one request from key's budget under limit (an unlimited
	// limit is allowed, though the server does not ask then; a budget whose
	// limit changed goes on under the new one). A refusal is a decision with
	// Allowed false and a positive RetryAfter, not an error; an error means
	// the limiter could not decide (its backend is unreachable, ctx ended),
	// and the server then answers 503/400558 with a Retry-After (fail
	// closed: a limiter that prefers to fail open says so by allowing).
	Allow(ctx context.Context, key string, limit RateLimit) (RateDecision, error)
}

// Defaults of [MemoryRateLimiterConfig].
const (
	// DefaultRateMaxKeys bounds the budgets a MemoryRateLimiter keeps.
	DefaultRateMaxKeys = 100_000
	// DefaultRateSweepInterval is how often a MemoryRateLimiter forgets the
	// budgets that have refilled.
	DefaultRateSweepInterval = time.Minute
)

// MemoryRateLimiterConfig configures [NewMemoryRateLimiter]. The zero value
// of every field is a documented default.
type MemoryRateLimiterConfig struct {
	// Now tells the time. The default is time.Now; tests inject a clock.
	Now func() time.Time
	// MaxKeys bounds the budgets kept. When a new key arrives with MaxKeys
	// budgets held and none has refilled, the budget used least recently is
	// forgotten: that account gets its whole burst back early. The default
	// is DefaultRateMaxKeys (100,000).
	MaxKeys int
	// SweepInterval is how often a call forgets the budgets that have
	// refilled completely (forgetting them loses nothing: a new budget
	// starts full). The default is DefaultRateSweepInterval (one minute).
	SweepInterval time.Duration
}

// MemoryRateLimiter is a [RateLimiter] in this process's memory, one
// golang.org/x/time/rate.Limiter per key. It starts no goroutine: calls
// sweep the idle budgets as they come, so it needs no Close. It is safe for
// concurrent use by multiple goroutines.
type MemoryRateLimiter struct {
	now      func() time.Time
	maxKeys  int
	interval time.Duration

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim   *rate.Limiter
	limit RateLimit
	used  time.Time
}

// NewMemoryRateLimiter returns an empty MemoryRateLimiter.
func NewMemoryRateLimiter(cfg MemoryRateLimiterConfig) *MemoryRateLimiter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultRateMaxKeys
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultRateSweepInterval
	}
	return &MemoryRateLimiter{
		now: cfg.Now, maxKeys: cfg.MaxKeys, interval: cfg.SweepInterval,
		buckets: make(map[string]*bucket),
	}
}

// Allow takes one request from key's budget, at the configured clock's
// time. It never returns an error (ctx is not consulted: the decision does
// not wait). A budget whose limit changed keeps its tokens under the new
// limit.
func (m *MemoryRateLimiter) Allow(_ context.Context, key string, limit RateLimit) (RateDecision, error) {
	if limit.Unlimited() {
		return RateDecision{Allowed: true}, nil
	}
	now := m.now()
	every, burst := rate.Limit(limit.PerSecond), limit.EffectiveBurst()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) >= m.interval {
		m.sweepLocked(now, false)
		m.lastSweep = now
	}
	b := m.buckets[key]
	if b == nil {
		if len(m.buckets) >= m.maxKeys {
			m.sweepLocked(now, true)
		}
		b = &bucket{lim: rate.NewLimiter(every, burst), limit: limit}
		m.buckets[key] = b
	} else if b.limit != limit {
		b.lim.SetLimitAt(now, every)
		b.lim.SetBurstAt(now, burst)
		b.limit = limit
	}
	b.used = now
	// AllowN changes nothing when it refuses, so a refusal costs nothing.
	if b.lim.AllowN(now, 1) {
		return RateDecision{Allowed: true}, nil
	}
	missing := 1 - b.lim.TokensAt(now)
	wait := time.Duration(math.Ceil(missing / limit.PerSecond * float64(time.Second)))
	return RateDecision{RetryAfter: max(wait, time.Nanosecond)}, nil
}

// sweepLocked forgets the budgets that are full at now; with evict, when
// none was, it also forgets the one used least recently. m.mu is held.
func (m *MemoryRateLimiter) sweepLocked(now time.Time, evict bool) {
	var oldest string
	var oldestUsed time.Time
	for k, b := range m.buckets {
		if b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
			delete(m.buckets, k)
			continue
		}
		if oldest == "" || b.used.Before(oldestUsed) {
			oldest, oldestUsed = k, b.used
		}
	}
	if evict && len(m.buckets) >= m.maxKeys && oldest != "" {
		delete(m.buckets, oldest)
	}
}

// rateLimited is the refusal of a request over its account's budget:
// 429/400140 with a Retry-After of whole seconds, at least one.
func rateLimited(retryAfter time.Duration) error {
	secs := max(1, (retryAfter+time.Second-1)/time.Second)
	return sserrors.ErrMovioAPIExceedRateLimit.WithRetryAfter(secs * time.Second)
}

// allow checks one request of account against its plan's request budget
// (Config.RateLimit). It returns nil when the request may go on,
// 429/400140 with a Retry-After when the budget is spent (nothing else
// changes), and 503/400558 with a Retry-After when the RateLimiter cannot
// decide. It runs once per authenticated request, before any work; the
// realtime upgrade calls it once its token names the account.
func (s *Server) allow(ctx context.Context, acct session.Account) error {
	if s.rateLimit == nil {
		return nil
	}
	limit := s.rateLimit(acct)
	if limit.Unlimited() {
		return nil
	}
	d, err := s.rates.Allow(ctx, acct.Name, limit)
	if err != nil {
		if e, ok := sserrors.As(err); ok && e.Status == http.StatusServiceUnavailable {
			return err
		}
		return errUnavailable.WithCause(err)
	}
	if !d.Allowed {
		return rateLimited(d.RetryAfter)
	}
	return nil
}
