package session

import (
	"errors"
	"strconv"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
)

// The bounds and defaults of the session settings (the wire contract).
const (
	// DefaultIdleTimeout is activity_idle_timeout when a client sends none.
	DefaultIdleTimeout = 120 * time.Second
	// MinIdleTimeout and MaxIdleTimeout bound activity_idle_timeout.
	MinIdleTimeout = 30 * time.Second
	MaxIdleTimeout = 3600 * time.Second
	// DefaultJoinTimeout closes a session still new or connecting this long
	// after its creation.
	DefaultJoinTimeout = 5 * time.Minute
	// DefaultRetention is how long a closed session answers 10005 before it
	// is forgotten and answers 10006.
	DefaultRetention = 10 * time.Minute
	// DefaultSubscriberBuffer is the number of events a subscriber may fall
	// behind before its oldest undelivered events are dropped.
	DefaultSubscriberBuffer = 1 << 16
)

// Config configures a Manager; zero fields take the documented defaults.
type Config struct {
	// Limiter grants a slot to every session (required).
	Limiter limits.Limiter
	// Avatars resolves the avatar of every new session (required).
	Avatars AvatarCatalog
	// JoinTimeout closes a session still new or connecting this long after
	// its creation. The default is DefaultJoinTimeout (5 minutes).
	JoinTimeout time.Duration
	// Retention is how long a closed session stays addressable (answering
	// 10005) before it is forgotten (10006). The default is
	// DefaultRetention (10 minutes).
	Retention time.Duration
	// Store keeps the sessions. The default is a new MemoryStore. A Store
	// serves one Manager.
	Store Store
	// Clock tells the time and wakes the manager's loops. The default is
	// SystemClock; under testing/synctest it is already fake.
	Clock Clock
	// Hooks are called on transitions, refusals, limiter calls and
	// background failures.
	Hooks Hooks
	// DefaultIdleTimeout replaces the 120 s default of
	// CreateOptions.IdleTimeout; it must lie within MinIdleTimeout and
	// MaxIdleTimeout.
	DefaultIdleTimeout time.Duration
	// LeaseRenewInterval is how often one goroutine renews the lease of
	// every session not yet closed (with a SharedStore: retries the Keep of
	// the slots not kept yet). The default is a third of the shortest
	// lease lifetime the limiter has granted (leases without an expiry are
	// never renewed).
	LeaseRenewInterval time.Duration
	// SubscriberBuffer is how many undelivered events a subscriber may
	// accumulate; past it the oldest are dropped (see Manager.Subscribe).
	// The default is DefaultSubscriberBuffer (65,536).
	SubscriberBuffer int
}

// Hooks let a program observe the manager (metrics, logs) without the
// library logging anything. Every hook is optional, is called
// synchronously on the goroutine doing the work (OnTransition while the
// session is locked), must be fast, must not block and must not call the
// Manager. Hooks must be safe for concurrent use.
type Hooks struct {
	// OnTransition receives every Event, in each session's order, before
	// subscribers do.
	OnTransition func(Event)
	// OnRefused receives the catalog code of every failed Create (400175,
	// 10012, 10013, 10015, 10007, 10014, 400558, ...) with the account the
	// caller gave, its plan included.
	OnRefused func(acct Account, code sserrors.Code)
	// OnLimiter receives the duration and the error (nil on success; a
	// refusal is a success) of every limiter call.
	OnLimiter func(op LimiterOp, d time.Duration, err error)
	// OnBackgroundError receives every failure of work the manager does on
	// its own goroutines, which have no caller to return it to (a timer's
	// close, a renewal, ...; see BackgroundOp). A race lost to another
	// change (ErrConflict, a state error, a session forgotten meanwhile) is
	// not a failure and is not reported. The work is not lost: the timer
	// loop asks the store again after a second, a lease is renewed (or, with
	// a SharedStore, its Keep retried) on the next round, a distributed
	// store reports a deadline again once its claim expires, and a slot that
	// was not released expires (a kept one: its session stays closing and
	// is reported again, as TimeoutOrphaned).
	OnBackgroundError func(op BackgroundOp, err error)
	// OnClosed receives the final Info of every session this Manager moves
	// to closed (whatever closed it: stop, a timer, the shutdown, a lost
	// lease, or finishing a close another node began): when it started, how
	// long it may have run, its plan's name and whether it was paid, why it
	// closed and when, so that billing needs no map of its own. With a
	// SharedStore each session is reported once, by the node that closed it.
	OnClosed func(Info)
}

// BackgroundOp names the background work that failed, for
// Hooks.OnBackgroundError. It is a plain value.
type BackgroundOp uint8

// The background work of a Manager.
const (
	// BackgroundDue: the timer loop could not ask the Store for the
	// sessions due (it asks again after a second).
	BackgroundDue BackgroundOp = iota + 1
	// BackgroundTimerClose: closing a session whose idle, duration or join
	// timer fired failed.
	BackgroundTimerClose
	// BackgroundForget: forgetting a closed session at the end of its
	// retention failed.
	BackgroundForget
	// BackgroundFinishClose: finishing the close of a session left in
	// closing (a distributed store's TimeoutOrphaned) failed.
	BackgroundFinishClose
	// BackgroundRenew: renewing a lease (other than one the limiter says
	// expired), retrying the Keep of a slot with a SharedStore, closing a
	// session whose lease expired, or listing the sessions to renew failed.
	BackgroundRenew
	// BackgroundShutdownClose: closing a session during Close failed.
	BackgroundShutdownClose
)

var backgroundOpNames = [...]string{"", "due", "timer_close", "forget", "finish_close", "renew", "shutdown_close"}

// String returns the work's name in snake case ("due", "timer_close",
// ...), the label of the background errors metric.
func (op BackgroundOp) String() string {
	if op > 0 && int(op) < len(backgroundOpNames) {
		return backgroundOpNames[op]
	}
	return "BackgroundOp(" + strconv.Itoa(int(op)) + ")"
}

// LimiterOp names a limits.Limiter method, for Hooks.OnLimiter. It is a
// plain value.
type LimiterOp uint8

// The limiter calls.
const (
	LimiterAcquire LimiterOp = iota + 1
	LimiterStarted
	LimiterRenew
	LimiterRelease
	LimiterKeep
)

var limiterOpNames = [...]string{"", "acquire", "started", "renew", "release", "keep"}

// String returns the method's name in lower case ("acquire", ...).
func (op LimiterOp) String() string {
	if op > 0 && int(op) < len(limiterOpNames) {
		return limiterOpNames[op]
	}
	return "LimiterOp(" + strconv.Itoa(int(op)) + ")"
}

// Clock is the manager's source of time. Implementations are safe for
// concurrent use by multiple goroutines.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a started timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// SystemClock is the Clock of the time package (time.Now, time.NewTimer),
// the default Clock of a Manager. It is a plain value, safe for concurrent
// use by multiple goroutines.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (SystemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time        { return t.t.C }
func (t systemTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
func (t systemTimer) Stop() bool                 { return t.t.Stop() }

// Timer is a Clock's one-shot timer, used by one goroutine at a time, with
// the semantics of *time.Timer (Go 1.23 and later: after Stop or Reset no
// stale value is received).
type Timer interface {
	C() <-chan time.Time
	Reset(d time.Duration) bool
	Stop() bool
}

// ErrClosed is the catalog error Create, Start, Join and Stop return once
// Close has begun: HTTP 503 with code 400558 and a Retry-After, the answer a
// client gets. Catalog errors match on their code, so errors.Is(err,
// ErrClosed) also holds for an unavailable backend; to ask "is this Manager
// shutting down", test errors.Is(err, ErrManagerClosed).
var ErrClosed = sserrors.ErrBackendUnavailable.WithCause(ErrManagerClosed)

// ErrManagerClosed is the cause inside ErrClosed and the only test that
// tells a Manager's shutdown from an unavailable backend: ErrClosed is what
// goes on the wire, ErrManagerClosed is what code checks.
var ErrManagerClosed = errors.New("session: manager closed")

var errEmptyAccount = sserrors.ErrInvalidParameter.WithCause(errors.New("session: empty account name"))
var errIdleTimeout = sserrors.ErrInvalidParameter.WithCause(errors.New("session: activity_idle_timeout outside 30–3600 s"))
