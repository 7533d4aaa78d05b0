// Package limitertest is the conformance suite of limits.Limiter: any
// implementation runs it from its own tests to prove that it honours the
// contract written in package limits.
//
// Start with Run. An implementation's test gives Run a factory that builds a
// fresh limiter for a Config and a way to move the limiter's clock forward:
//
//	func TestConformance(t *testing.T) {
//		limitertest.Run(t, func(t *testing.T, cfg limitertest.Config) limitertest.Harness {
//			clock := limitertest.NewClock(cfg.Start)
//			l := limits.NewMemory(limits.MemoryConfig{
//				Capacity: cfg.Capacity, LeaseTTL: cfg.LeaseTTL, Now: clock.Now,
//			})
//			return limitertest.Harness{Limiter: l, Advance: clock.Advance}
//		})
//	}
//
// A limiter whose clock runs (Redis takes its time from TIME) implements
// Advance by adding an offset to its own clock: the suite never assumes that
// time stands still between two calls, only that it moves at most a few
// seconds in real time during one case, and every threshold it checks has a
// margin of at least fifteen seconds of limiter time. The one exception is
// the case that pins expiry to the millisecond: it sets Config.Frozen, and
// the factory must then give the limiter a clock that moves only by Advance.
//
// Every case is a subtest with a limiter of its own, and checks exact
// numbers (how many grants, which limit refused) rather than timing. The
// suite itself is safe to call from several top-level tests, but its cases
// do not call t.Parallel: the goroutine-leak case needs a quiet process.
package limitertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
)

// Config is what a case asks of the limiter the factory builds.
type Config struct {
	// Capacity is the service's capacity of open sessions; 0 means
	// unlimited.
	Capacity int
	// LeaseTTL is the lease lifetime. The suite always sets it (at least
	// one minute).
	LeaseTTL time.Duration
	// Start is the time the limiter's clock must read when the factory
	// returns. It is always a UTC instant years after the real time the
	// suite runs at, so that a backend which turns limiter times into
	// absolute expiries of its own never sees them in the past.
	Start time.Time
	// Frozen asks for a clock that reads Start and moves only when Advance
	// moves it, so that a case can act at the very instant a lease expires
	// (only ExpiryIsExactToTheMillisecond sets it). A limiter whose clock
	// otherwise runs (the real time plus an offset) must stop it for such
	// a case; the other cases leave Frozen false and allow a running clock.
	Frozen bool
}

// Harness is a limiter under test and the control of its clock.
type Harness struct {
	// Limiter is a fresh limiter: no slot held, no minutes counted, in a
	// key space of its own. The suite calls its Close exactly once, at the
	// end of the case (before the factory's own t.Cleanup functions run).
	Limiter limits.Limiter
	// Advance moves the limiter's clock forward by d. It is called only
	// while no other call to the limiter is running.
	Advance func(d time.Duration)
	// LeakOptions are extra goleak options for the goroutine check, for
	// goroutines that neither the limiter nor the factory's t.Cleanup
	// functions own (say, a shared client of the whole test binary).
	LeakOptions []goleak.Option
}

// Run runs the conformance suite against the limiters newHarness builds,
// each case as a subtest of t with a limiter of its own. newHarness receives
// the subtest's t: it may register cleanups on it (stopping a server,
// closing a client) and must fail through it when it cannot build a limiter.
func Run(t *testing.T, newHarness func(t *testing.T, cfg Config) Harness) {
	t.Helper()
	s := suite{newHarness: newHarness, prefix: randomPrefix(t)}
	for _, c := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"ExactlyNOfMConcurrentAcquiresPerAccount", s.testConcurrentPerAccount},
		{"CapacityExactAcrossAccounts", s.testCapacityAcrossAccounts},
		{"OrderOfChecks", s.testOrderOfChecks},
		{"GrantedLease", s.testGrantedLease},
		{"ReleaseIdempotentAndFreesSlot", s.testReleaseIdempotent},
		{"SameSessionTakesNoSecondSlot", s.testSameSession},
		{"SameSessionConcurrently", s.testSameSessionConcurrently},
		{"ExpiryWithoutRenewalFreesSlot", s.testExpiry},
		{"RenewalKeepsSlot", s.testRenewal},
		{"ExpiryIsExactToTheMillisecond", s.testExactExpiry},
		{"KeptSlotNeverExpires", s.testKept},
		{"LeaseNeverKeptExpires", s.testNeverKept},
		{"KeepOfExpiredOrReleasedLeaseFails", s.testKeepExpired},
		{"KeptTrialMinutesCountOnce", s.testKeptTrialMinutes},
		{"KeepWithBadInputOrDoneContext", s.testKeepBadInput},
		{"TrialMinutesFromStartedToRelease", s.testTrialMinutes},
		{"TrialMinutesOfExpiredLeaseCountUntilExpiry", s.testTrialMinutesExpired},
		{"TrialQuotaZeroRefusesEveryAcquire", s.testTrialQuotaZero},
		{"TrialQuotaAcrossMonthBoundary", s.testMonthBoundary},
		{"PaidPlanNeverRefusedByQuota", s.testPaidNoQuota},
		{"ContextCancellation", s.testContextCancellation},
		{"BadInputChangesNothing", s.testBadInput},
		{"NoGoroutineLeftAfterClose", s.testNoGoroutineLeft},
	} {
		t.Run(c.name, c.run)
	}
}

// Start times of the cases: the middle of a month, and twenty minutes
// before a month ends.
var (
	midMonth    = time.Date(2041, time.March, 14, 12, 0, 0, 0, time.UTC)
	lateInMonth = time.Date(2041, time.January, 31, 23, 40, 0, 0, time.UTC)
)

// tolerance is how far a lease's Expires may be from the expected instant:
// real time passes between calls to a limiter whose clock is not injected.
const tolerance = 5 * time.Second

type suite struct {
	newHarness func(t *testing.T, cfg Config) Harness
	prefix     string // makes account names unique to this Run
}

// env is one case's limiter with helpers that fail the case on errors.
type env struct {
	t      *testing.T
	h      Harness
	ctx    context.Context
	prefix string
	now    time.Time // the limiter's clock as the case has moved it
	seq    atomic.Int64
}

func (s *suite) env(t *testing.T, cfg Config) *env {
	t.Helper()
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = time.Minute
	}
	if cfg.Start.IsZero() {
		cfg.Start = midMonth
	}
	h := s.newHarness(t, cfg)
	require.NotNil(t, h.Limiter, "Harness.Limiter")
	require.NotNil(t, h.Advance, "Harness.Advance")
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { assert.NoError(t, h.Limiter.Close(), "Close") }) })
	return &env{t: t, h: h, ctx: context.Background(), prefix: s.prefix, now: cfg.Start}
}

func randomPrefix(t *testing.T) string {
	var b [4]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return hex.EncodeToString(b[:])
}

// account names an account unique to this Run.
func (e *env) account(name string) string { return e.prefix + "-" + name }

// id returns a new session id unique to this Run.
func (e *env) id() string { return fmt.Sprintf("%s-s%d", e.prefix, e.seq.Add(1)) }

func (e *env) advance(d time.Duration) {
	e.h.Advance(d)
	e.now = e.now.Add(d)
}

func (e *env) acquire(account string, plan limits.Plan, id string) limits.Decision {
	e.t.Helper()
	d, err := e.h.Limiter.Acquire(e.ctx, limits.Request{Account: account, Plan: plan, SessionID: id})
	require.NoError(e.t, err, "Acquire(%s, %s)", account, id)
	return d
}

// grant acquires and requires a grant.
func (e *env) grant(account string, plan limits.Plan, id string) limits.Lease {
	e.t.Helper()
	d := e.acquire(account, plan, id)
	require.Equal(e.t, limits.NoLimit, d.Refused, "Acquire(%s, %s) refused", account, id)
	require.True(e.t, d.Granted())
	return d.Lease
}

// refuse acquires and requires a refusal by want, with no lease.
func (e *env) refuse(account string, plan limits.Plan, id string, want limits.Limit) {
	e.t.Helper()
	d := e.acquire(account, plan, id)
	require.Equal(e.t, want, d.Refused, "Acquire(%s, %s).Refused", account, id)
	require.False(e.t, d.Granted())
	require.Equal(e.t, limits.Lease{}, d.Lease, "a refusal carries no lease")
}

func (e *env) started(l limits.Lease) {
	e.t.Helper()
	require.NoError(e.t, e.h.Limiter.Started(e.ctx, l), "Started(%s)", l.SessionID)
}

func (e *env) renew(l limits.Lease) limits.Lease {
	e.t.Helper()
	n, err := e.h.Limiter.Renew(e.ctx, l)
	require.NoError(e.t, err, "Renew(%s)", l.SessionID)
	return n
}

func (e *env) renewExpired(l limits.Lease) {
	e.t.Helper()
	_, err := e.h.Limiter.Renew(e.ctx, l)
	require.ErrorIs(e.t, err, limits.ErrLeaseExpired, "Renew(%s) of a lease without a slot", l.SessionID)
}

func (e *env) keep(l limits.Lease) {
	e.t.Helper()
	require.NoError(e.t, e.h.Limiter.Keep(e.ctx, l), "Keep(%s)", l.SessionID)
}

func (e *env) keepExpired(l limits.Lease) {
	e.t.Helper()
	err := e.h.Limiter.Keep(e.ctx, l)
	require.ErrorIs(e.t, err, limits.ErrLeaseExpired, "Keep(%s) of a lease without a slot", l.SessionID)
}

func (e *env) release(l limits.Lease) {
	e.t.Helper()
	require.NoError(e.t, e.h.Limiter.Release(e.ctx, l), "Release(%s)", l.SessionID)
}

// probeQuota reports whether the account's trial quota still lets a session
// in: it acquires a fresh session under plan (whose concurrency must leave
// room) and releases it at once, before it starts, so that it counts nothing.
func (e *env) probeQuota(account string, plan limits.Plan) bool {
	e.t.Helper()
	d := e.acquire(account, plan, e.id())
	switch d.Refused {
	case limits.NoLimit:
		e.release(d.Lease)
		return true
	case limits.TrialQuota:
		return false
	}
	e.t.Fatalf("quota probe refused by %v, want a grant or %v", d.Refused, limits.TrialQuota)
	return false
}

// expectQuota requires probeQuota to give want at the case's current time.
func (e *env) expectQuota(account string, plan limits.Plan, want bool, why string) {
	e.t.Helper()
	require.Equal(e.t, want, e.probeQuota(account, plan), "quota left at %s: %s", e.now.Format(time.RFC3339), why)
}

// concurrently runs f(i) for i in [0, n) on n goroutines released at once,
// and returns when all have returned.
func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

// outcome counts the decisions of concurrent acquires.
type outcome struct {
	mu      sync.Mutex
	leases  []limits.Lease
	refused map[limits.Limit]int
	errs    []error
}

func (o *outcome) add(d limits.Decision, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err != nil:
		o.errs = append(o.errs, err)
	case d.Granted():
		o.leases = append(o.leases, d.Lease)
	default:
		if o.refused == nil {
			o.refused = map[limits.Limit]int{}
		}
		o.refused[d.Refused]++
	}
}

func (s *suite) testConcurrentPerAccount(t *testing.T) {
	const m = 120
	for _, c := range []struct {
		name string
		plan limits.Plan
	}{
		{"trial", limits.TrialPlan},
		{"paid/7", limits.Plan{Name: "seven", MaxConcurrent: 7}},
		{"one", limits.Plan{Name: "one", MaxConcurrent: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := s.env(t, Config{})
			acct := e.account("burst")
			var o outcome
			concurrently(m, func(int) {
				o.add(e.h.Limiter.Acquire(e.ctx, limits.Request{Account: acct, Plan: c.plan, SessionID: e.id()}))
			})
			require.Empty(t, o.errs)
			n := c.plan.MaxConcurrent
			assert.Len(t, o.leases, n, "grants of %d concurrent acquires", m)
			assert.Equal(t, map[limits.Limit]int{limits.Concurrency: m - n}, o.refused)
			// Every grant is a distinct session of the account.
			seen := map[string]bool{}
			for _, l := range o.leases {
				assert.Equal(t, acct, l.Account)
				assert.False(t, seen[l.SessionID], "session granted twice")
				seen[l.SessionID] = true
			}
			// The limit holds afterwards too, and releasing one slot lets
			// exactly one more in.
			e.refuse(acct, c.plan, e.id(), limits.Concurrency)
			e.release(o.leases[0])
			e.grant(acct, c.plan, e.id())
			e.refuse(acct, c.plan, e.id(), limits.Concurrency)
		})
	}
}

func (s *suite) testCapacityAcrossAccounts(t *testing.T) {
	const (
		capacity = 25
		accounts = 12
		each     = 8 // goroutines per account
		perAcct  = 5 // plan limit: 12*5 = 60 > 25, so the capacity binds
	)
	e := s.env(t, Config{Capacity: capacity})
	plan := limits.Plan{Name: "five", MaxConcurrent: perAcct}
	names := make([]string, accounts)
	for i := range names {
		names[i] = e.account(fmt.Sprintf("a%d", i))
	}
	round := func() *outcome {
		var o outcome
		concurrently(accounts*each, func(i int) {
			o.add(e.h.Limiter.Acquire(e.ctx, limits.Request{Account: names[i%accounts], Plan: plan, SessionID: e.id()}))
		})
		require.Empty(t, o.errs)
		return &o
	}
	check := func(o *outcome) {
		t.Helper()
		require.Len(t, o.leases, capacity, "grants across accounts")
		per := map[string]int{}
		for _, l := range o.leases {
			per[l.Account]++
		}
		for a, n := range per {
			assert.LessOrEqual(t, n, perAcct, "slots of %s", a)
		}
		assert.Equal(t, accounts*each-capacity, o.refused[limits.SessionFull]+o.refused[limits.Concurrency])
		assert.Zero(t, o.refused[limits.TrialQuota])
	}
	first := round()
	check(first)
	e.refuse(e.account("late"), plan, e.id(), limits.SessionFull)

	// Releasing every slot concurrently gives the whole capacity back,
	// exactly.
	concurrently(len(first.leases), func(i int) {
		assert.NoError(t, e.h.Limiter.Release(e.ctx, first.leases[i]))
	})
	check(round())
	e.refuse(e.account("late"), plan, e.id(), limits.SessionFull)
}

func (s *suite) testOrderOfChecks(t *testing.T) {
	// Each case brings the limiter into a state where the limits marked
	// true would refuse and checks which one is reported.
	trial := func(minutes, conc int) limits.Plan {
		return limits.Plan{Name: "t", Trial: true, MonthlyMinutes: minutes, MaxConcurrent: conc}
	}
	paid := func(conc int) limits.Plan { return limits.Plan{Name: "p", MaxConcurrent: conc} }
	for _, c := range []struct {
		name                      string
		quota, concurrency, capac bool
		capacity                  int
		plan                      limits.Plan // of the refused request
		want                      limits.Limit
	}{
		{"all three: quota", true, true, true, 1, trial(1, 1), limits.TrialQuota},
		{"quota and concurrency: quota", true, true, false, 0, trial(1, 1), limits.TrialQuota},
		{"quota and capacity: quota", true, false, true, 1, trial(1, 5), limits.TrialQuota},
		{"concurrency and capacity: concurrency", false, true, true, 1, trial(1000, 1), limits.Concurrency},
		{"concurrency and capacity, paid: concurrency", false, true, true, 1, paid(1), limits.Concurrency},
		{"capacity alone", false, false, true, 1, paid(5), limits.SessionFull},
		{"quota alone", true, false, false, 0, trial(1, 5), limits.TrialQuota},
		{"concurrency alone", false, true, false, 0, paid(1), limits.Concurrency},
		{"zero quota, zero concurrency, full: quota", true, true, true, 1, trial(0, 0), limits.TrialQuota},
		{"zero concurrency, full: concurrency", false, true, true, 1, paid(0), limits.Concurrency},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := s.env(t, Config{Capacity: c.capacity, LeaseTTL: time.Hour})
			acct := e.account("acct")
			// One started trial session of acct holds the only slot of a
			// capacity-1 service, and its concurrency of 1 when the case
			// wants concurrency to refuse.
			conc := 5
			if c.concurrency {
				conc = 1
			}
			l := e.grant(acct, trial(1000, conc), e.id())
			e.started(l)
			e.advance(2 * time.Minute) // 2 minutes used: over a quota of 1
			var target string
			switch {
			case c.quota || c.concurrency:
				target = acct // refused by its own state
			default:
				target = e.account("other") // capacity alone
			}
			plan := c.plan
			// The table must trip exactly the limits it names: acct has
			// used 2 minutes and holds 1 slot, the service holds 1.
			trips := [3]bool{
				plan.Trial && plan.MonthlyMinutes <= 2 && target == acct || plan.Trial && plan.MonthlyMinutes <= 0,
				target == acct && plan.MaxConcurrent <= 1 || plan.MaxConcurrent <= 0,
				c.capacity == 1,
			}
			require.Equal(t, [3]bool{c.quota, c.concurrency, c.capac}, trips, "the case's state")
			e.refuse(target, plan, e.id(), c.want)
		})
	}
}

func (s *suite) testGrantedLease(t *testing.T) {
	e := s.env(t, Config{LeaseTTL: 2 * time.Minute})
	acct, id := e.account("a"), e.id()
	l := e.grant(acct, limits.PaidPlan, id)
	assert.Equal(t, acct, l.Account)
	assert.Equal(t, id, l.SessionID)
	assert.WithinDuration(t, e.now.Add(2*time.Minute), l.Expires, tolerance, "Expires = Start + LeaseTTL")
}

func (s *suite) testReleaseIdempotent(t *testing.T) {
	t.Run("capacity", func(t *testing.T) {
		e := s.env(t, Config{Capacity: 2})
		a := e.grant(e.account("a"), limits.PaidPlan, e.id())
		e.grant(e.account("b"), limits.PaidPlan, e.id())
		e.refuse(e.account("c"), limits.PaidPlan, e.id(), limits.SessionFull)
		e.release(a)
		e.release(a)
		e.release(a)
		// One slot came back, not three.
		e.grant(e.account("c"), limits.PaidPlan, e.id())
		e.refuse(e.account("d"), limits.PaidPlan, e.id(), limits.SessionFull)
	})
	t.Run("concurrency", func(t *testing.T) {
		e := s.env(t, Config{})
		acct := e.account("a")
		plan := limits.Plan{Name: "two", MaxConcurrent: 2}
		a := e.grant(acct, plan, e.id())
		e.grant(acct, plan, e.id())
		e.release(a)
		e.release(a)
		e.grant(acct, plan, e.id())
		e.refuse(acct, plan, e.id(), limits.Concurrency)
		// Releasing a lease that was never granted, or another account's
		// session, frees nothing.
		e.release(limits.Lease{Account: acct, SessionID: e.id()})
		e.release(limits.Lease{Account: e.account("elsewhere"), SessionID: a.SessionID})
		e.refuse(acct, plan, e.id(), limits.Concurrency)
	})
	t.Run("renew after release", func(t *testing.T) {
		e := s.env(t, Config{})
		l := e.grant(e.account("a"), limits.PaidPlan, e.id())
		e.release(l)
		e.renewExpired(l)
	})
}

func (s *suite) testSameSession(t *testing.T) {
	t.Run("concurrency", func(t *testing.T) {
		e := s.env(t, Config{})
		acct, id := e.account("a"), e.id()
		plan := limits.Plan{Name: "two", MaxConcurrent: 2}
		first := e.grant(acct, plan, id)
		e.advance(20 * time.Second)
		again := e.grant(acct, plan, id)
		assert.Equal(t, id, again.SessionID)
		assert.Equal(t, acct, again.Account)
		assert.WithinDuration(t, first.Expires.Add(20*time.Second), again.Expires, tolerance, "the second acquire renews the lease")
		e.grant(acct, plan, e.id())
		e.refuse(acct, plan, e.id(), limits.Concurrency)
		// One release frees the session's one slot.
		e.release(again)
		e.grant(acct, plan, e.id())
		e.refuse(acct, plan, e.id(), limits.Concurrency)
	})
	t.Run("capacity", func(t *testing.T) {
		e := s.env(t, Config{Capacity: 1})
		acct, id := e.account("a"), e.id()
		e.grant(acct, limits.PaidPlan, id)
		// The retried request is not refused by its own first grant.
		e.grant(acct, limits.PaidPlan, id)
		e.grant(acct, limits.PaidPlan, id)
		e.refuse(acct, limits.PaidPlan, e.id(), limits.SessionFull)
	})
	t.Run("quota", func(t *testing.T) {
		e := s.env(t, Config{LeaseTTL: time.Hour})
		acct, id := e.account("a"), e.id()
		plan := limits.Plan{Name: "t", Trial: true, MonthlyMinutes: 5, MaxConcurrent: 3}
		l := e.grant(acct, plan, id)
		e.started(l)
		e.advance(6 * time.Minute)
		e.refuse(acct, plan, e.id(), limits.TrialQuota)
		// A running session is not cut by the quota: its retried acquire
		// and its renewals still succeed.
		e.grant(acct, plan, id)
		e.renew(l)
	})
}

func (s *suite) testSameSessionConcurrently(t *testing.T) {
	const m = 60
	e := s.env(t, Config{Capacity: 2})
	acct, id := e.account("a"), e.id()
	plan := limits.Plan{Name: "two", MaxConcurrent: 2}
	var o outcome
	concurrently(m, func(int) {
		o.add(e.h.Limiter.Acquire(e.ctx, limits.Request{Account: acct, Plan: plan, SessionID: id}))
	})
	require.Empty(t, o.errs)
	require.Len(t, o.leases, m, "every acquire of the same session is granted")
	for _, l := range o.leases {
		assert.Equal(t, id, l.SessionID)
	}
	// It took one slot of the account and one of the service.
	e.grant(e.account("b"), plan, e.id())
	e.refuse(e.account("c"), plan, e.id(), limits.SessionFull)
	e.release(o.leases[0])
	e.grant(acct, plan, e.id())
}

func (s *suite) testExpiry(t *testing.T) {
	const ttl = time.Minute
	e := s.env(t, Config{Capacity: 1, LeaseTTL: ttl})
	acct := e.account("a")
	plan := limits.Plan{Name: "one", MaxConcurrent: 1}
	l := e.grant(acct, plan, e.id())
	e.advance(ttl - 20*time.Second)
	e.refuse(acct, plan, e.id(), limits.Concurrency) // still held
	e.advance(40 * time.Second)                      // 20 s past its expiry
	next := e.grant(acct, plan, e.id())              // the account's slot came back
	e.renewExpired(l)
	e.release(l) // harmless, and frees nothing
	e.refuse(acct, plan, e.id(), limits.Concurrency)

	// The service's capacity comes back too: next expires, and another
	// account takes the only slot.
	e.refuse(e.account("b"), plan, e.id(), limits.SessionFull)
	e.advance(ttl + 20*time.Second)
	e.grant(e.account("b"), plan, e.id())
	e.renewExpired(next)
	e.refuse(acct, plan, e.id(), limits.SessionFull)
}

// testExactExpiry pins the rule of package limits, "a lease is expired from
// the instant Expires is reached", at the millisecond (the finest time a
// Redis limiter keeps): one millisecond before Expires the lease renews,
// keeps and holds its slot; at Expires it is gone, for Renew, for Keep and
// for the slot counts alike.
func (s *suite) testExactExpiry(t *testing.T) {
	const ttl = time.Minute
	plan := limits.Plan{Name: "one", MaxConcurrent: 1}
	t.Run("renew", func(t *testing.T) {
		e := s.env(t, Config{Capacity: 1, LeaseTTL: ttl, Frozen: true})
		acct := e.account("a")
		l := e.grant(acct, plan, e.id())
		require.True(t, l.Expires.Equal(e.now.Add(ttl)), "Acquire: Expires = %v, want %v", l.Expires, e.now.Add(ttl))
		e.advance(ttl - time.Millisecond)
		r := e.renew(l)
		require.True(t, r.Expires.Equal(e.now.Add(ttl)), "Renew 1 ms before expiry: Expires = %v, want %v", r.Expires, e.now.Add(ttl))
		e.advance(ttl - time.Millisecond)
		e.refuse(acct, plan, e.id(), limits.Concurrency) // 1 ms before the renewed expiry: still held
		e.advance(time.Millisecond)                      // the renewed expiry, exactly
		e.renewExpired(r)
		e.grant(e.account("b"), plan, e.id()) // the service's only slot is free
	})
	t.Run("keep", func(t *testing.T) {
		e := s.env(t, Config{Capacity: 1, LeaseTTL: ttl, Frozen: true})
		acct := e.account("a")
		l := e.grant(acct, plan, e.id())
		e.advance(ttl)
		e.keepExpired(l)
		e.grant(acct, plan, e.id()) // the account's only slot is free
	})
	t.Run("slot counts", func(t *testing.T) {
		e := s.env(t, Config{Capacity: 1, LeaseTTL: ttl, Frozen: true})
		acct := e.account("a")
		e.grant(acct, plan, e.id())
		e.advance(ttl - time.Millisecond)
		e.refuse(acct, plan, e.id(), limits.Concurrency)
		e.refuse(e.account("b"), plan, e.id(), limits.SessionFull)
		e.advance(time.Millisecond)
		e.grant(acct, plan, e.id())
	})
}

func (s *suite) testRenewal(t *testing.T) {
	const ttl = time.Minute
	e := s.env(t, Config{Capacity: 1, LeaseTTL: ttl})
	acct := e.account("a")
	plan := limits.Plan{Name: "one", MaxConcurrent: 1}
	l := e.grant(acct, plan, e.id())
	e.advance(ttl / 2)
	r := e.renew(l)
	assert.Equal(t, l.Account, r.Account)
	assert.Equal(t, l.SessionID, r.SessionID)
	assert.WithinDuration(t, e.now.Add(ttl), r.Expires, tolerance, "Renew extends to now + LeaseTTL")
	e.advance(ttl * 3 / 4) // past the first expiry, 15 s before the renewed one
	e.refuse(acct, plan, e.id(), limits.Concurrency)
	e.refuse(e.account("b"), plan, e.id(), limits.SessionFull)

	// A holder renewing at a third of the TTL keeps its slot for ever; the
	// lease it renews with may be the original one.
	e.renew(l)
	for range 12 {
		e.advance(ttl / 3)
		e.renew(l)
	}
	e.refuse(acct, plan, e.id(), limits.Concurrency)
	e.refuse(e.account("b"), plan, e.id(), limits.SessionFull)

	e.release(l)
	e.renewExpired(l)
	e.grant(acct, plan, e.id())
}

// quotaPlan allows ten trial minutes and room for the probes.
var quotaPlan = limits.Plan{Name: "trial10", Trial: true, MonthlyMinutes: 10, MaxConcurrent: 5}

func (s *suite) testTrialMinutes(t *testing.T) {
	t.Run("from Started to Release, once", func(t *testing.T) {
		e := s.env(t, Config{LeaseTTL: 24 * time.Hour})
		acct := e.account("a")

		// A session that never started counts nothing, however long it is held.
		idle := e.grant(acct, quotaPlan, e.id())
		e.advance(30 * time.Minute)
		e.release(idle)
		e.expectQuota(acct, quotaPlan, true, "a session never started counts nothing")

		// 6 minutes, released twice, count once.
		c := e.grant(acct, quotaPlan, e.id())
		e.started(c)
		e.advance(6 * time.Minute)
		e.release(c)
		e.release(c)
		e.expectQuota(acct, quotaPlan, true, "6 of 10 minutes (12 if the second release counted)")

		// Starting again neither restarts nor doubles the count.
		d := e.grant(acct, quotaPlan, e.id())
		e.started(d)
		e.advance(3 * time.Minute)
		e.started(d)
		e.advance(30 * time.Second)
		e.expectQuota(acct, quotaPlan, true, "9.5 of 10 minutes, the running session included")
		e.advance(time.Minute)
		e.expectQuota(acct, quotaPlan, false, "10.5 of 10 minutes, the running session included")

		// The running session is not cut: it renews and re-acquires.
		e.renew(d)
		e.grant(acct, quotaPlan, d.SessionID)
		e.release(d)
		e.release(d)
		e.advance(time.Hour)
		e.expectQuota(acct, quotaPlan, false, "10.5 of 10 minutes after the release")

		// Starting a released session counts nothing.
		err := e.h.Limiter.Started(e.ctx, c)
		if err != nil {
			require.ErrorIs(t, err, limits.ErrLeaseExpired, "Started of a released lease")
		}
	})
	t.Run("release stops the count", func(t *testing.T) {
		e := s.env(t, Config{LeaseTTL: 24 * time.Hour})
		acct := e.account("a")
		l := e.grant(acct, quotaPlan, e.id())
		e.started(l)
		e.advance(5 * time.Minute)
		e.release(l)
		e.advance(2 * time.Hour)
		e.expectQuota(acct, quotaPlan, true, "5 of 10 minutes two hours after the release")
		late := e.grant(acct, quotaPlan, e.id())
		e.started(late)
		e.advance(5*time.Minute + 30*time.Second)
		e.expectQuota(acct, quotaPlan, false, "10.5 of 10 minutes")
	})
	t.Run("accounts are counted apart", func(t *testing.T) {
		e := s.env(t, Config{LeaseTTL: 24 * time.Hour})
		l := e.grant(e.account("a"), quotaPlan, e.id())
		e.started(l)
		e.advance(20 * time.Minute)
		e.expectQuota(e.account("a"), quotaPlan, false, "20 of 10 minutes")
		e.expectQuota(e.account("b"), quotaPlan, true, "another account has used nothing")
	})
}

func (s *suite) testTrialMinutesExpired(t *testing.T) {
	// A holder that dies stops renewing: its session counts until the
	// lease's expiry, not until now and not only until its last renewal.
	e := s.env(t, Config{LeaseTTL: 2 * time.Minute})
	acct := e.account("a")
	dead := e.grant(acct, quotaPlan, e.id())
	e.started(dead)
	for range 4 {
		e.advance(time.Minute)
		e.renew(dead)
	}
	// Last renewed 4 minutes in: it expires 6 minutes in.
	e.advance(time.Hour)
	e.release(dead) // a late release counts nothing more
	e.expectQuota(acct, quotaPlan, true, "the dead session counts 6 minutes, not 64")

	live := e.grant(acct, quotaPlan, e.id())
	e.started(live)
	for range 3 {
		e.advance(time.Minute)
		e.renew(live)
	}
	e.advance(30 * time.Second)
	e.expectQuota(acct, quotaPlan, true, "6 + 3.5 of 10 minutes")
	e.advance(time.Minute)
	e.expectQuota(acct, quotaPlan, false, "6 + 4.5 of 10 minutes (8.5 if counted to the last renewal)")
}

func (s *suite) testTrialQuotaZero(t *testing.T) {
	e := s.env(t, Config{})
	zero := limits.Plan{Name: "t0", Trial: true, MonthlyMinutes: 0, MaxConcurrent: 3}
	acct := e.account("a")
	for range 3 {
		e.refuse(acct, zero, e.id(), limits.TrialQuota)
	}
	// The same account on a paid plan, or a trial with minutes, gets in.
	e.grant(acct, limits.Plan{Name: "p", MaxConcurrent: 3}, e.id())
	e.grant(acct, quotaPlan, e.id())
	e.refuse(acct, zero, e.id(), limits.TrialQuota)
}

func (s *suite) testMonthBoundary(t *testing.T) {
	// 23:40 on the last day of January (UTC). Time before midnight counts
	// for January, after it for February, which starts fresh.
	e := s.env(t, Config{LeaseTTL: 24 * time.Hour, Start: lateInMonth})
	plan := limits.Plan{Name: "trial15", Trial: true, MonthlyMinutes: 15, MaxConcurrent: 5}
	acct := e.account("a")

	a := e.grant(acct, plan, e.id()) // runs across midnight
	e.started(a)
	d := e.grant(acct, plan, e.id()) // ends before midnight
	e.started(d)
	e.advance(8 * time.Minute) // 23:48: 16 January minutes
	e.expectQuota(acct, plan, false, "16 of 15 January minutes")
	e.release(d)

	e.advance(17 * time.Minute) // 00:05 on 1 February
	e.expectQuota(acct, plan, true, "February: 5 minutes of the running session")
	e.release(a) // 25 minutes in all, 5 of them in February

	e.advance(9 * time.Minute) // 00:14
	e.expectQuota(acct, plan, true, "February: 5 minutes (25 if the whole session counted)")
	x := e.grant(acct, plan, e.id())
	e.started(x)
	e.advance(9*time.Minute + 30*time.Second) // 00:23:30
	e.expectQuota(acct, plan, true, "February: 5 + 9.5 minutes")
	e.advance(time.Minute)
	e.expectQuota(acct, plan, false, "February: 5 + 10.5 minutes (10.5 if the session across midnight counted nothing)")
	e.release(x)
}

func (s *suite) testPaidNoQuota(t *testing.T) {
	e := s.env(t, Config{LeaseTTL: 24 * time.Hour})
	acct := e.account("a")
	paid := limits.Plan{Name: "p", MaxConcurrent: 10} // MonthlyMinutes 0, not a trial
	var held []limits.Lease
	for range 3 {
		l := e.grant(acct, paid, e.id())
		e.started(l)
		held = append(held, l)
	}
	e.advance(20 * time.Hour)
	e.grant(acct, paid, e.id())
	for _, l := range held {
		e.release(l)
	}
	e.grant(acct, paid, e.id())

	// A trial that used its minutes, then upgraded, is not refused either.
	up := e.account("upgraded")
	l := e.grant(up, quotaPlan, e.id())
	e.started(l)
	e.advance(11 * time.Minute)
	e.refuse(up, quotaPlan, e.id(), limits.TrialQuota)
	e.grant(up, paid, e.id())
	e.grant(up, limits.PaidPlan, e.id())
}

func (s *suite) testContextCancellation(t *testing.T) {
	e := s.env(t, Config{Capacity: 1})
	acct, id := e.account("a"), e.id()
	plan := limits.Plan{Name: "one", MaxConcurrent: 1}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, stop := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer stop()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"cancelled", cancelled, context.Canceled},
		{"deadline exceeded", expired, context.DeadlineExceeded},
	} {
		_, err := e.h.Limiter.Acquire(c.ctx, limits.Request{Account: acct, Plan: plan, SessionID: id})
		require.ErrorIs(t, err, c.want, "Acquire with a %s context", c.name)
	}
	// Nothing was taken: the same session and then the only slot are free.
	l := e.grant(acct, plan, id)

	// A done context neither renews nor releases by accident: the slot is
	// still held afterwards, whatever the calls returned.
	_, err := e.h.Limiter.Renew(cancelled, l)
	require.ErrorIs(t, err, context.Canceled, "Renew with a cancelled context")
	err = e.h.Limiter.Started(cancelled, l)
	require.ErrorIs(t, err, context.Canceled, "Started with a cancelled context")
	e.refuse(acct, plan, e.id(), limits.Concurrency)
	e.refuse(e.account("b"), plan, e.id(), limits.SessionFull)
	e.renew(l)

	// Release with a done context either releases or fails with the
	// context's error (and the lease then expires).
	if err := e.h.Limiter.Release(cancelled, l); err != nil {
		require.ErrorIs(t, err, context.Canceled, "Release with a cancelled context")
	}
}

func (s *suite) testBadInput(t *testing.T) {
	e := s.env(t, Config{Capacity: 1})
	acct := e.account("a")
	plan := limits.Plan{Name: "one", MaxConcurrent: 1}
	for _, req := range []limits.Request{
		{Account: "", Plan: plan, SessionID: e.id()},
		{Account: acct, Plan: plan, SessionID: ""},
		{},
	} {
		_, err := e.h.Limiter.Acquire(e.ctx, req)
		require.Error(t, err, "Acquire(%+v)", req)
		require.ErrorIs(t, err, sserrors.ErrInvalidParameter, "Acquire(%+v)", req)
		require.False(t, errors.Is(err, limits.ErrUnavailable), "bad input is not a backend failure")
	}
	// Leases without an account or a session change nothing.
	for _, l := range []limits.Lease{{}, {Account: acct}, {SessionID: e.id()}} {
		_, err := e.h.Limiter.Renew(e.ctx, l)
		require.Error(t, err, "Renew(%+v)", l)
		_ = e.h.Limiter.Started(e.ctx, l)
		_ = e.h.Limiter.Release(e.ctx, l)
	}
	// Nothing was taken.
	e.grant(acct, plan, e.id())
	e.refuse(acct, plan, e.id(), limits.Concurrency)
	e.refuse(e.account("b"), plan, e.id(), limits.SessionFull)
}

func (s *suite) testNoGoroutineLeft(t *testing.T) {
	before := goleak.IgnoreCurrent()
	var extra []goleak.Option
	t.Run("use", func(t *testing.T) {
		e := s.env(t, Config{Capacity: 10})
		extra = e.h.LeakOptions
		concurrently(20, func(i int) {
			d, err := e.h.Limiter.Acquire(e.ctx, limits.Request{Account: e.account(fmt.Sprint(i % 4)), Plan: limits.TrialPlan, SessionID: e.id()})
			if assert.NoError(t, err) && d.Granted() {
				assert.NoError(t, e.h.Limiter.Started(e.ctx, d.Lease))
				_, err := e.h.Limiter.Renew(e.ctx, d.Lease)
				assert.NoError(t, err)
				assert.NoError(t, e.h.Limiter.Release(e.ctx, d.Lease))
			}
		})
		e.advance(time.Hour)
		// The case's cleanup closes the limiter, then the factory's
		// cleanups run.
	})
	// Every goroutine the limiter and its harness started is gone.
	goleak.VerifyNone(t, append([]goleak.Option{before}, extra...)...)
}

func (s *suite) testKept(t *testing.T) {
	const ttl = time.Minute
	e := s.env(t, Config{Capacity: 1, LeaseTTL: ttl})
	acct := e.account("a")
	plan := limits.Plan{Name: "one", MaxConcurrent: 1}
	l := e.grant(acct, plan, e.id())
	e.keep(l)
	e.keep(l) // keeping twice does nothing
	e.advance(10 * ttl)
	e.refuse(acct, plan, e.id(), limits.Concurrency)
	e.refuse(e.account("b"), plan, e.id(), limits.SessionFull)

	// Renewing or acquiring again returns the kept slot, still kept.
	r := e.renew(l)
	assert.Equal(t, l.SessionID, r.SessionID)
	assert.True(t, r.Expires.IsZero(), "Renew of a kept lease: Expires = %v, want the zero Time", r.Expires)
	again := e.grant(acct, plan, l.SessionID)
	assert.True(t, again.Expires.IsZero(), "Acquire of a kept session: Expires = %v, want the zero Time", again.Expires)
	e.advance(10 * ttl)
	e.refuse(acct, plan, e.id(), limits.Concurrency)
	e.refuse(e.account("b"), plan, e.id(), limits.SessionFull)

	// Release frees it at once, and a released lease cannot be kept.
	e.release(l)
	e.keepExpired(l)
	e.renewExpired(l)
	e.grant(e.account("b"), plan, e.id())
	e.refuse(acct, plan, e.id(), limits.SessionFull)
}

func (s *suite) testNeverKept(t *testing.T) {
	const ttl = time.Minute
	e := s.env(t, Config{Capacity: 2, LeaseTTL: ttl})
	acct := e.account("a")
	plan := limits.Plan{Name: "two", MaxConcurrent: 2}
	k := e.grant(acct, plan, e.id())
	e.keep(k)
	lost := e.grant(acct, plan, e.id()) // its holder died before keeping it
	e.advance(ttl - 20*time.Second)
	e.refuse(acct, plan, e.id(), limits.Concurrency) // both still held
	e.advance(40 * time.Second)                      // 20 s past the lease's expiry
	e.grant(acct, plan, e.id())                      // the lost lease's slot came back
	e.renewExpired(lost)
	e.refuse(acct, plan, e.id(), limits.Concurrency)
	e.refuse(e.account("b"), plan, e.id(), limits.SessionFull)
}

func (s *suite) testKeepExpired(t *testing.T) {
	const ttl = time.Minute
	e := s.env(t, Config{Capacity: 1, LeaseTTL: ttl})
	acct := e.account("a")
	plan := limits.Plan{Name: "one", MaxConcurrent: 1}
	l := e.grant(acct, plan, e.id())
	e.advance(ttl + 20*time.Second)
	e.keepExpired(l)
	// The failed Keep took nothing: the slot is free, and stays free.
	next := e.grant(acct, plan, e.id())
	e.renewExpired(l)
	e.release(next)
	e.keepExpired(next)
	e.keepExpired(limits.Lease{Account: acct, SessionID: e.id()}) // never granted
	e.grant(e.account("b"), plan, e.id())
	e.refuse(acct, plan, e.id(), limits.SessionFull)
}

func (s *suite) testKeptTrialMinutes(t *testing.T) {
	// A kept session counts from Started to its Release, with no renewal
	// in between, once however often it is released.
	const ttl = time.Minute
	e := s.env(t, Config{LeaseTTL: ttl})
	acct := e.account("a")
	l := e.grant(acct, quotaPlan, e.id())
	e.started(l)
	e.keep(l)
	e.advance(6 * time.Minute) // six lease TTLs, never renewed
	e.expectQuota(acct, quotaPlan, true, "6 of 10 minutes, the kept session included")
	e.release(l)
	e.release(l)
	e.advance(time.Hour)

	m := e.grant(acct, quotaPlan, e.id())
	e.keep(m)
	e.started(m)
	e.advance(3*time.Minute + 30*time.Second)
	e.expectQuota(acct, quotaPlan, true, "6 + 3.5 of 10 minutes (12 + 3.5 if the second release counted)")
	e.advance(time.Minute)
	e.expectQuota(acct, quotaPlan, false, "6 + 4.5 of 10 minutes (1 + 1 if counted to the lease's expiry)")
	e.release(m)
	e.advance(time.Hour)
	e.expectQuota(acct, quotaPlan, false, "10.5 of 10 minutes after the release")
}

func (s *suite) testKeepBadInput(t *testing.T) {
	const ttl = time.Minute
	e := s.env(t, Config{Capacity: 1, LeaseTTL: ttl})
	acct := e.account("a")
	plan := limits.Plan{Name: "one", MaxConcurrent: 1}
	l := e.grant(acct, plan, e.id())
	for _, bad := range []limits.Lease{{}, {Account: acct}, {SessionID: l.SessionID}} {
		require.Error(t, e.h.Limiter.Keep(e.ctx, bad), "Keep(%+v)", bad)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, e.h.Limiter.Keep(cancelled, l), context.Canceled, "Keep with a cancelled context")
	// Nothing was kept: the lease expires as if Keep had not been called.
	e.advance(ttl + 20*time.Second)
	e.keepExpired(l)
	e.grant(acct, plan, e.id())
}
