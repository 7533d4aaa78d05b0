package limits

import (
	"context"
	"errors"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
)

// Plan is what an account pays for. A Plan is a plain value, safe to copy
// and to share read-only between goroutines.
type Plan struct {
	// Name identifies the plan ("trial", "pro").
	Name string
	// MaxConcurrent is the number of sessions an account may hold at once
	// (new, connecting, connected or closing). Zero (or less) refuses every
	// acquire with Concurrency.
	MaxConcurrent int
	// Trial marks a trial plan: its streaming minutes are counted against
	// MonthlyMinutes and its sessions are not paid.
	Trial bool
	// MonthlyMinutes is a trial account's streaming minutes per calendar
	// month (UTC). Zero (or less) refuses every acquire with TrialQuota.
	// Ignored unless Trial.
	MonthlyMinutes int
	// SessionDurationLimit closes a session this long after it started.
	// Zero means no limit.
	SessionDurationLimit time.Duration

	// The limits below are not the Limiter's: the HTTP server enforces them
	// per account, and they sit here so that a plan says all it allows.

	// RequestsPerSecond is the request budget of each account of the plan,
	// refilled continuously. Zero (or less) means unlimited.
	RequestsPerSecond float64
	// RequestBurst is how many requests an account may make at once. Zero
	// takes RequestsPerSecond rounded up.
	RequestBurst int
	// MaxTokens bounds the bearer tokens an account of the plan may hold at
	// once. Zero takes the token store's default; negative allows none.
	MaxTokens int
}

// HeyGen's published defaults: a trial holds 3 sessions, streams 300
// minutes a month and 600 s per session; a paid plan holds 100 sessions.
// Treat them as read-only.
var (
	TrialPlan = Plan{Name: "trial", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 300, SessionDurationLimit: 600 * time.Second}
	PaidPlan  = Plan{Name: "pro", MaxConcurrent: 100}
)

// Limit names the limit that refused an acquire. Its values are listed in
// the order Acquire checks them.
type Limit int

const (
	// NoLimit means the acquire was granted.
	NoLimit Limit = iota
	// TrialQuota: the account's trial minutes for the month are used up (10015).
	TrialQuota
	// Concurrency: the account holds its plan's maximum of sessions (10007).
	Concurrency
	// SessionFull: the service holds its maximum of sessions, its
	// capacity (10014, transient).
	SessionFull
)

// Capacity is the former name of SessionFull.
//
// Deprecated: use SessionFull; Capacity read like MemoryConfig.Capacity, a
// number of sessions, not a refusal.
const Capacity = SessionFull

// String returns a short name for logs and metrics labels.
func (l Limit) String() string {
	switch l {
	case NoLimit:
		return "none"
	case TrialQuota:
		return "trial_quota"
	case Concurrency:
		return "concurrency"
	case SessionFull:
		return "capacity"
	}
	return "unknown"
}

// CapacityRetryAfter is the Retry-After sent with a capacity refusal: the
// only refusal worth retrying soon, since sessions close all the time.
const CapacityRetryAfter = 5 * time.Second

var errCapacity = sserrors.ErrSessionFull.WithRetryAfter(CapacityRetryAfter)

// Err returns the catalog error for a refusal (nil for NoLimit and unknown
// values): 429/10015 for TrialQuota, 429/10007 for Concurrency, 429/10014
// with a Retry-After of CapacityRetryAfter for SessionFull. The errors are
// shared values: use their With* methods to derive one.
func (l Limit) Err() error {
	switch l {
	case TrialQuota:
		return sserrors.ErrTrialLimitReached
	case Concurrency:
		return sserrors.ErrConcurrentLimitReached
	case SessionFull:
		return errCapacity
	}
	return nil
}

// Request asks for a slot for one session. Account and SessionID must not
// be empty; Plan is the account's plan at the time of the request.
type Request struct {
	Account   string
	Plan      Plan
	SessionID string
}

// Lease is a granted slot. It exists only after a grant; the zero Lease is
// not a lease. A lease expires at Expires unless renewed or kept (see
// Limiter.Keep); a kept lease has a zero Expires: it never expires. A slot
// is known by its Account and SessionID: Started, Keep, Renew and Release
// accept a Lease built from those two alone (Expires is informational), so
// that a holder that kept only the session's identity can still release
// it. A Lease is a plain value, safe to copy.
type Lease struct {
	Account   string
	SessionID string
	Expires   time.Time
}

// Decision is the result of an acquire: a Lease when Refused is NoLimit,
// otherwise the limit that refused (and a zero Lease). A refusal is a
// result, not an error. A Decision is a plain value, safe to copy.
type Decision struct {
	Lease   Lease
	Refused Limit
}

// Granted reports whether the decision granted a lease.
func (d Decision) Granted() bool { return d.Refused == NoLimit }

// ErrUnavailable is returned (wrapped) when a limiter's backend cannot be
// reached or fails: the server answers it with HTTP 503, code 400558 (API
// connection error) and a Retry-After of one second. It is never a refusal:
// no limit was checked. Running sessions are not affected by it; their
// leases are renewed again on the next round. Match it with
// errors.Is(err, ErrUnavailable).
var ErrUnavailable = sserrors.ErrBackendUnavailable

// Limiter guards the three limits. Implementations are safe for concurrent
// use by multiple goroutines. The package documentation states the
// contract; limits/limitertest checks it.
//
// Acquire, Started, Keep and Renew return ctx.Err() (possibly wrapped) for a
// context that is done before they decided, and then change nothing;
// Release may still release (an in-memory one always does). An error for
// which errors.Is(err, ErrUnavailable) holds means the backend failed.
type Limiter interface {
	// Acquire checks the trial quota, then the plan's concurrency, then the
	// capacity, and takes a slot when all three allow it; otherwise the
	// Decision names the first limit that refused. Acquiring again for a
	// session id that already holds a live slot returns that slot again
	// (renewed) without any check and without taking a second one. A
	// request with an empty Account or SessionID is an error with the
	// catalog's 400175 (Invalid parameter) code.
	Acquire(ctx context.Context, req Request) (Decision, error)
	// Started marks the moment the session started: from then until Release
	// (or the lease's expiry) its time counts against a trial account's
	// monthly minutes. Calling it again for the same session does nothing.
	// For a lease that holds no slot (released, expired) it counts nothing
	// and returns nil or ErrLeaseExpired (wrapped), as the implementation
	// documents.
	Started(ctx context.Context, lease Lease) error
	// Keep makes a live lease durable: its slot no longer expires and needs
	// no renewal; only Release frees it, and any holder that knows the
	// session's identity may release it (another node of the service). A
	// holder keeps a slot once what outlives it knows of the session (a
	// session record in a store shared by several nodes), so that a holder
	// that dies before that loses the slot when its lease expires. Keeping
	// a kept slot again does nothing and returns nil. It fails with
	// ErrLeaseExpired (wrapped) when the lease has already expired or been
	// released, and then changes nothing.
	Keep(ctx context.Context, lease Lease) error
	// Renew extends a lease to the limiter's lease TTL from now and returns
	// it with its new Expires; it fails with ErrLeaseExpired (wrapped) when
	// the lease has already expired or been released: the session lost its
	// slot and must be closed. Renewing a kept lease leaves it kept and
	// returns it with a zero Expires.
	Renew(ctx context.Context, lease Lease) (Lease, error)
	// Release frees the slot and stops counting the session's minutes.
	// Releasing twice or releasing an expired lease is harmless and returns
	// nil; a Lease without Account or SessionID changes nothing (nil or the
	// 400175 error). A Release that fails (backend down, ctx done) leaves the
	// slot to expire with its lease.
	Release(ctx context.Context, lease Lease) error
	// Close stops whatever the limiter started (goroutines, connections it
	// opened). Leases are not released by Close.
	Close() error
}

// ErrLeaseExpired is returned (possibly wrapped) by Renew, Keep and Started
// for a lease that no longer holds a slot: it expired without renewal or was
// released.
var ErrLeaseExpired = errors.New("limits: lease expired or released")
