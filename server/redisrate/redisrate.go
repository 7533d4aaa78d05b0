// Package redisrate keeps the per-account request budgets of the server
// (a server.RateLimiter) in Redis, so that every node of a service shares
// one budget per account: a burst spent through one node is spent for all.
//
// It is a thin layer over github.com/go-redis/redis_rate/v10, a GCRA
// (generic cell rate algorithm) limiter: each decision is one Lua script on
// one key, which holds the account's theoretical arrival time and expires
// once the budget has refilled, so Redis keeps only the accounts that are
// spending. Time comes from Redis TIME, so node clocks do not matter. A
// refusal writes nothing: it costs the account nothing, and its RetryAfter
// is exact.
//
// # Keys
//
// The key of a budget (the account name, as the server calls Allow) is
//
//	rate:{Prefix:r:<tag>}
//
// where "rate:" is redis_rate's own prefix and <tag> the first 16 bytes of
// the SHA-256 of the account name, in hex: each account has a hash tag of
// its own, so that on a Redis Cluster the accounts spread over the slots
// (and their masters) instead of all deciding on one, and Redis does not
// hold the account names. Budgets of the earlier layout (one hash tag,
// "rate:{Prefix}:r:<account>") are never read: they start full once after
// the upgrade, and expire unread.
//
// # When Redis fails
//
// Config.Failure (a limits.FailurePolicy) says what Allow does when Redis
// cannot be reached or does not answer within Config.Timeout: FailClosed
// (the default, as for the session limiter of limits/redislimiter) returns
// an error wrapping errors.ErrBackendUnavailable, which the server answers
// 503/400558 with a Retry-After; FailOpen lets the request through unchecked and reports the
// error to Config.OnFailOpen (for a metric). Fail-closed is the default
// because on a node that uses Redis for its sessions and tokens an outage
// stops most calls anyway, and a budget that silently stops counting is a
// surprise; choose FailOpen when the budget only guards against floods and
// availability matters more. A caller that went away (its context
// cancelled) gets its context's error either way.
//
// Concurrency: a Limiter is safe for concurrent use by multiple goroutines;
// it starts no goroutine and needs no Close (the client stays the
// caller's).
package redisrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
)

// Defaults of Config's zero values.
const (
	// DefaultPrefix starts the hash tag of every key (the other Redis
	// backends' default too; the key names never collide).
	DefaultPrefix = "streamsession"
	// DefaultTimeout bounds one decision.
	DefaultTimeout = time.Second
)

// Config configures a Limiter. The zero value of every field is a
// documented default. Every node sharing a budget uses the same Prefix.
type Config struct {
	// Prefix starts the hash tag of every key. It must not contain '{' or
	// '}'. The default is DefaultPrefix.
	Prefix string
	// Timeout bounds each decision, within the caller's context. The
	// default is DefaultTimeout (1 s).
	Timeout time.Duration
	// Failure is what Allow does when Redis cannot be reached. The default
	// is FailClosed.
	Failure limits.FailurePolicy
	// OnFailOpen, if set, is called with the Redis error each time
	// FailOpen lets a request through undecided. It must be fast and safe
	// for concurrent use.
	OnFailOpen func(err error)
}

// Limiter is a server.RateLimiter whose budgets live in Redis. It is safe
// for concurrent use by multiple goroutines.
type Limiter struct {
	gcra    *redis_rate.Limiter
	prefix  string
	timeout time.Duration
	failure limits.FailurePolicy
	onOpen  func(error)
}

var _ server.RateLimiter = (*Limiter)(nil)

// New returns a Limiter on client. It does not contact Redis. Create the
// client with ContextTimeoutEnabled so that a call returns by its
// deadline. An invalid cfg is a 400175 error.
func New(client redis.UniversalClient, cfg Config) (*Limiter, error) {
	if client == nil {
		return nil, invalid("nil client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, invalid("Prefix %q contains a brace", cfg.Prefix)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < time.Millisecond {
		return nil, invalid("Timeout must be at least 1ms")
	}
	if !cfg.Failure.Valid() {
		return nil, invalid("unknown Failure %v", cfg.Failure)
	}
	return &Limiter{
		gcra:    redis_rate.NewLimiter(client),
		prefix:  cfg.Prefix,
		timeout: cfg.Timeout,
		failure: cfg.Failure,
		onOpen:  cfg.OnFailOpen,
	}, nil
}

// tagSize is the bytes of the account's SHA-256 in its hash tag.
const tagSize = 16

// key is the name of key's budget, less redis_rate's "rate:" (see the
// package doc).
func (l *Limiter) key(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "{" + l.prefix + ":r:" + hex.EncodeToString(sum[:tagSize]) + "}"
}

func invalid(format string, args ...any) error {
	return sserrors.ErrInvalidParameter.WithCause(fmt.Errorf("redisrate: "+format, args...))
}

// Allow takes one request from key's budget under limit, in one script. A
// refusal (Allowed false, RetryAfter until one request passes) writes
// nothing. When Redis fails, it follows Config.Failure (see the package
// doc). An unlimited limit is always allowed without asking Redis.
func (l *Limiter) Allow(ctx context.Context, key string, limit server.RateLimit) (server.RateDecision, error) {
	if limit.Unlimited() {
		return server.RateDecision{Allowed: true}, nil
	}
	if err := ctx.Err(); err != nil {
		return server.RateDecision{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	res, err := l.gcra.Allow(cctx, l.key(key), gcraLimit(limit))
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return server.RateDecision{}, ctx.Err()
		}
		if l.failure == limits.FailOpen {
			if l.onOpen != nil {
				l.onOpen(err)
			}
			return server.RateDecision{Allowed: true}, nil
		}
		return server.RateDecision{}, sserrors.ErrBackendUnavailable.WithCause(fmt.Errorf("redisrate: %w", err))
	}
	if res.Allowed > 0 {
		return server.RateDecision{Allowed: true}, nil
	}
	return server.RateDecision{RetryAfter: max(res.RetryAfter, time.Nanosecond)}, nil
}

// gcraLimit expresses limit in redis_rate's terms: one request every
// 1/PerSecond (to the nanosecond, so fractional rates are exact), Burst at
// once.
func gcraLimit(limit server.RateLimit) redis_rate.Limit {
	period := time.Duration(math.Min(float64(time.Second)/limit.PerSecond, 1<<62))
	return redis_rate.Limit{Rate: 1, Period: max(period, time.Nanosecond), Burst: limit.EffectiveBurst()}
}
