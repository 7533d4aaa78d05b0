// Package limits decides whether a new streaming session may be created: the
// trial quota (10015), the plan's concurrent sessions (10007) and the
// service's capacity (10014), checked in that order.
//
// A Limiter grants a Lease for a session or refuses with the Limit that
// refused; a refusal is a result, not an error. An error from a Limiter means
// its backend failed (see ErrUnavailable).
package limits

import (
	"context"
	"errors"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
)

// Plan is what an account pays for.
type Plan struct {
	// Name identifies the plan ("trial", "pro").
	Name string
	// MaxConcurrent is the number of sessions an account may hold at once
	// (new, connecting, connected or closing). Zero means no sessions.
	MaxConcurrent int
	// Trial marks a trial plan: its streaming minutes are counted against
	// MonthlyMinutes and its sessions are not paid.
	Trial bool
	// MonthlyMinutes is a trial account's streaming minutes per calendar
	// month (UTC). Ignored unless Trial.
	MonthlyMinutes int
	// SessionDurationLimit closes a session this long after it started.
	// Zero means no limit.
	SessionDurationLimit time.Duration
}

// HeyGen's published defaults.
var (
	TrialPlan = Plan{Name: "trial", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 300, SessionDurationLimit: 600 * time.Second}
	PaidPlan  = Plan{Name: "pro", MaxConcurrent: 100}
)

// Limit names the limit that refused an acquire.
type Limit int

const (
	// NoLimit means the acquire was granted.
	NoLimit Limit = iota
	// TrialQuota: the account's trial minutes for the month are used up (10015).
	TrialQuota
	// Concurrency: the account holds its plan's maximum of sessions (10007).
	Concurrency
	// Capacity: the service holds its maximum of sessions (10014, transient).
	Capacity
)

// String returns a short name for logs and metrics labels.
func (l Limit) String() string {
	switch l {
	case NoLimit:
		return "none"
	case TrialQuota:
		return "trial_quota"
	case Concurrency:
		return "concurrency"
	case Capacity:
		return "capacity"
	}
	return "unknown"
}

// CapacityRetryAfter is the Retry-After sent with a capacity refusal.
const CapacityRetryAfter = 5 * time.Second

var errCapacity = sserrors.ErrSessionFull.WithRetryAfter(CapacityRetryAfter)

// Err returns the catalog error for a refusal (nil for NoLimit): 10015,
// 10007, or 10014 with a Retry-After.
func (l Limit) Err() error {
	switch l {
	case TrialQuota:
		return sserrors.ErrTrialLimitReached
	case Concurrency:
		return sserrors.ErrConcurrentLimitReached
	case Capacity:
		return errCapacity
	}
	return nil
}

// Request asks for a slot for one session.
type Request struct {
	Account   string
	Plan      Plan
	SessionID string
}

// Lease is a granted slot. It exists only after a grant; the zero Lease is
// not a lease. A lease expires at Expires unless renewed.
type Lease struct {
	Account   string
	SessionID string
	Expires   time.Time
}

// Decision is the result of an acquire: a Lease when Refused is NoLimit,
// otherwise the limit that refused.
type Decision struct {
	Lease   Lease
	Refused Limit
}

// Granted reports whether the decision granted a lease.
func (d Decision) Granted() bool { return d.Refused == NoLimit }

// ErrUnavailable is returned (wrapped) when a limiter's backend cannot be
// reached: the server answers it with HTTP 503, code 400558 and a
// Retry-After. Running sessions are not affected.
var ErrUnavailable = sserrors.ErrAPIConnectionError.WithStatus(503).WithRetryAfter(time.Second)

// Limiter guards the three limits. Implementations are safe for concurrent
// use by multiple goroutines. limits/limitertest checks the contract.
type Limiter interface {
	// Acquire checks the trial quota, then the plan's concurrency, then the
	// capacity, and takes a slot when all three allow it. Acquiring again
	// for a session id that already holds a slot returns that slot again
	// (renewed) without taking a second one.
	Acquire(ctx context.Context, req Request) (Decision, error)
	// Started marks the moment the session started: from then until Release
	// its time counts against a trial account's monthly minutes. Calling it
	// again for the same session does nothing.
	Started(ctx context.Context, lease Lease) error
	// Renew extends a lease; it fails with ErrLeaseExpired (wrapped) when the
	// lease has already expired or been released.
	Renew(ctx context.Context, lease Lease) (Lease, error)
	// Release frees the slot and stops counting the session's minutes.
	// Releasing twice, or an expired lease, is harmless.
	Release(ctx context.Context, lease Lease) error
	// Close stops whatever the limiter started.
	Close() error
}

// ErrLeaseExpired is returned by Renew for a lease that no longer holds a slot.
var ErrLeaseExpired = errors.New("limits: lease expired or released")
