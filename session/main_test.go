package session

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testAvatars is the catalog of most tests.
var testAvatars = Avatars{
	{ID: "Wayne_20240711", Public: true, Active: true, Default: true, DefaultVoice: "v1"},
	{ID: "acme_private", Owner: "acme", Active: true},
	{ID: "retired", Public: true, Active: false},
}

var (
	paidPlan  = limits.Plan{Name: "pro", MaxConcurrent: 100}
	trialPlan = limits.Plan{Name: "trial", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 300, SessionDurationLimit: 600 * time.Second}
	acme      = Account{Name: "acme", Plan: paidPlan}
)

// fakeLimiter is an exact, in-process limiter for tests: per-account
// concurrency, a service capacity, a trial quota switch, and a log of every
// call with the time it was made.
type fakeLimiter struct {
	mu        sync.Mutex
	capacity  int
	ttl       time.Duration   // Expires = now + ttl when > 0
	exhausted map[string]bool // accounts whose trial quota is used up
	failNext  error           // returned by the next Acquire
	held      map[string]string
	perAcct   map[string]int
	started   map[string]time.Time
	releases  map[string]int
	releaseAt map[string]time.Time
	renewals  int
	expire    map[string]bool // sessions whose next Renew or Keep says ErrLeaseExpired
	kept      map[string]bool // sessions whose slot Keep made durable
	keeps     int             // calls to Keep
	keepErr   error           // returned by every Keep while set
}

func newFakeLimiter(capacity int) *fakeLimiter {
	return &fakeLimiter{
		capacity:  capacity,
		exhausted: map[string]bool{},
		held:      map[string]string{},
		perAcct:   map[string]int{},
		started:   map[string]time.Time{},
		releases:  map[string]int{},
		releaseAt: map[string]time.Time{},
		expire:    map[string]bool{},
		kept:      map[string]bool{},
	}
}

func (l *fakeLimiter) Acquire(ctx context.Context, req limits.Request) (limits.Decision, error) {
	if err := ctx.Err(); err != nil {
		return limits.Decision{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.failNext; err != nil {
		l.failNext = nil
		return limits.Decision{}, err
	}
	lease := limits.Lease{Account: req.Account, SessionID: req.SessionID}
	if l.ttl > 0 {
		lease.Expires = time.Now().Add(l.ttl)
	}
	if _, ok := l.held[req.SessionID]; ok {
		return limits.Decision{Lease: lease}, nil
	}
	switch {
	case req.Plan.Trial && l.exhausted[req.Account]:
		return limits.Decision{Refused: limits.TrialQuota}, nil
	case l.perAcct[req.Account] >= req.Plan.MaxConcurrent:
		return limits.Decision{Refused: limits.Concurrency}, nil
	case len(l.held) >= l.capacity:
		return limits.Decision{Refused: limits.SessionFull}, nil
	}
	l.held[req.SessionID] = req.Account
	l.perAcct[req.Account]++
	return limits.Decision{Lease: lease}, nil
}

func (l *fakeLimiter) Started(ctx context.Context, lease limits.Lease) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.started[lease.SessionID]; !ok {
		l.started[lease.SessionID] = time.Now()
	}
	return nil
}

func (l *fakeLimiter) Renew(ctx context.Context, lease limits.Lease) (limits.Lease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.renewals++
	if _, ok := l.held[lease.SessionID]; !ok || l.expire[lease.SessionID] {
		return limits.Lease{}, limits.ErrLeaseExpired
	}
	if l.ttl > 0 {
		lease.Expires = time.Now().Add(l.ttl)
	}
	return lease, nil
}

func (l *fakeLimiter) Keep(ctx context.Context, lease limits.Lease) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keeps++
	if l.keepErr != nil {
		return l.keepErr
	}
	if _, ok := l.held[lease.SessionID]; !ok || l.expire[lease.SessionID] {
		return limits.ErrLeaseExpired
	}
	l.kept[lease.SessionID] = true
	return nil
}

func (l *fakeLimiter) isKept(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kept[id]
}

func (l *fakeLimiter) Release(ctx context.Context, lease limits.Lease) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.kept, lease.SessionID)
	l.releases[lease.SessionID]++
	l.releaseAt[lease.SessionID] = time.Now()
	if acct, ok := l.held[lease.SessionID]; ok {
		delete(l.held, lease.SessionID)
		l.perAcct[acct]--
	}
	return nil
}

func (l *fakeLimiter) Close() error { return nil }

func (l *fakeLimiter) heldCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

func (l *fakeLimiter) holds(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.held[id]
	return ok
}

func (l *fakeLimiter) releaseCount(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.releases[id]
}

func (l *fakeLimiter) releasedAt(id string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.releaseAt[id]
}

// newTestManager returns a Manager on a fakeLimiter (capacity 1000) and
// testAvatars, with cfg's non-zero fields applied. The caller closes it.
func newTestManager(t testing.TB, cfg Config) (*Manager, *fakeLimiter) {
	t.Helper()
	lim, _ := cfg.Limiter.(*fakeLimiter)
	if cfg.Limiter == nil {
		lim = newFakeLimiter(1000)
		cfg.Limiter = lim
	}
	if cfg.Avatars == nil {
		cfg.Avatars = testAvatars
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m, lim
}

// closeManager closes m and fails the test if that does not work.
func closeManager(t testing.TB, m *Manager) {
	t.Helper()
	if err := m.Close(context.Background()); err != nil {
		t.Fatalf("Close = %v", err)
	}
}

// eventLog is a subscriber that records every event.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) snapshot() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// of returns the events of one session.
func (l *eventLog) of(id string) []Event {
	var out []Event
	for _, e := range l.snapshot() {
		if e.SessionID == id {
			out = append(out, e)
		}
	}
	return out
}

// codeOf returns the catalog code of err (0 for nil).
func codeOf(err error) sserrors.Code { return sserrors.CodeOf(err) }

type limitsLease = limits.Lease

var errUnavailableForTest = limits.ErrUnavailable.WithCause(context.DeadlineExceeded)

func atomicAdd(p *int64) int64 { return atomic.AddInt64(p, 1) }
