package limitertest_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/limits/limitertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestClock(t *testing.T) {
	start := time.Date(2040, time.May, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))
	c := limitertest.NewClock(start)
	assert.True(t, start.Equal(c.Now()))
	assert.Equal(t, time.UTC, c.Now().Location())
	c.Advance(90 * time.Second)
	assert.Equal(t, start.Add(90*time.Second).UTC(), c.Now())
}

// memoryHarness is the reference implementation the broken ones wrap.
func memoryHarness(t *testing.T, cfg limitertest.Config) limitertest.Harness {
	clock := limitertest.NewClock(cfg.Start)
	m := limits.NewMemory(limits.MemoryConfig{Capacity: cfg.Capacity, LeaseTTL: cfg.LeaseTTL, Now: clock.Now})
	return limitertest.Harness{Limiter: m, Advance: clock.Advance}
}

func TestMemoryPasses(t *testing.T) {
	limitertest.Run(t, memoryHarness)
}

// Broken limiters: each breaks one rule of the contract; the suite must
// fail on it, in the case named.
var broken = map[string]struct {
	wrap func(h limitertest.Harness) limitertest.Harness
	// fails lists cases that must fail.
	fails []string
}{
	"second slot per retry": {
		wrap: func(h limitertest.Harness) limitertest.Harness {
			h.Limiter = &retryTakesSlot{Limiter: h.Limiter}
			return h
		},
		fails: []string{"SameSessionTakesNoSecondSlot", "SameSessionConcurrently"},
	},
	"leases never expire": {
		wrap: func(h limitertest.Harness) limitertest.Harness {
			h.Advance = func(time.Duration) {}
			return h
		},
		fails: []string{"ExpiryWithoutRenewalFreesSlot", "TrialMinutesFromStartedToRelease", "TrialQuotaAcrossMonthBoundary"},
	},
	// A lease still live at the instant of its expiry (a limiter comparing
	// with > where the contract says >=): here the clock lags the suite's by
	// one millisecond.
	"expires a millisecond late": {
		wrap: func(h limitertest.Harness) limitertest.Harness {
			advance := h.Advance
			first := true
			h.Advance = func(d time.Duration) {
				if first {
					d -= time.Millisecond
					first = false
				}
				advance(d)
			}
			return h
		},
		fails: []string{"ExpiryIsExactToTheMillisecond"},
	},
	"minutes never counted": {
		wrap: func(h limitertest.Harness) limitertest.Harness {
			h.Limiter = &noMinutes{Limiter: h.Limiter}
			return h
		},
		fails: []string{"OrderOfChecks", "TrialMinutesFromStartedToRelease", "TrialMinutesOfExpiredLeaseCountUntilExpiry", "TrialQuotaAcrossMonthBoundary"},
	},
	"capacity before concurrency": {
		wrap: func(h limitertest.Harness) limitertest.Harness {
			h.Limiter = &capacityFirst{Limiter: h.Limiter}
			return h
		},
		fails: []string{"OrderOfChecks"},
	},
	"keep does nothing": {
		wrap: func(h limitertest.Harness) limitertest.Harness {
			h.Limiter = &keepless{Limiter: h.Limiter}
			return h
		},
		fails: []string{"KeptSlotNeverExpires", "KeptTrialMinutesCountOnce"},
	},
	"ignores context": {
		wrap: func(h limitertest.Harness) limitertest.Harness {
			h.Limiter = &ignoresContext{Limiter: h.Limiter}
			return h
		},
		fails: []string{"ContextCancellation"},
	},
	"goroutine leak": {
		wrap: func(h limitertest.Harness) limitertest.Harness {
			h.Limiter = &leaky{Limiter: h.Limiter, stop: make(chan struct{})}
			return h
		},
		fails: []string{"NoGoroutineLeftAfterClose"},
	},
}

// TestBrokenLimiter runs the suite against one broken limiter when the
// test binary is started by TestSuiteCatchesBrokenLimiters.
func TestBrokenLimiter(t *testing.T) {
	name := os.Getenv("LIMITERTEST_BROKEN")
	if name == "" {
		t.Skip("run by TestSuiteCatchesBrokenLimiters")
	}
	b, ok := broken[name]
	require.True(t, ok, "unknown broken limiter %q", name)
	limitertest.Run(t, func(t *testing.T, cfg limitertest.Config) limitertest.Harness {
		return b.wrap(memoryHarness(t, cfg))
	})
}

func TestSuiteCatchesBrokenLimiters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the test binary once per broken limiter")
	}
	for name, b := range broken {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenLimiter$", "-test.v")
			cmd.Env = append(os.Environ(), "LIMITERTEST_BROKEN="+name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the suite passed a limiter whose %s:\n%s", name, out)
			for _, c := range b.fails {
				assert.Regexp(t, regexp.MustCompile(`--- FAIL: TestBrokenLimiter/`+c+`\b`), string(out), "case %s", c)
			}
		})
	}
}

// retryTakesSlot gives every acquire a session id of its own, so a retried
// request takes a second slot.
type retryTakesSlot struct {
	limits.Limiter
}

func (l *retryTakesSlot) Acquire(ctx context.Context, req limits.Request) (limits.Decision, error) {
	req.SessionID += "#" + time.Now().Format(time.RFC3339Nano)
	return l.Limiter.Acquire(ctx, req)
}

// keepless answers Keep without keeping: the lease still expires.
type keepless struct{ limits.Limiter }

func (keepless) Keep(context.Context, limits.Lease) error { return nil }

// noMinutes never starts counting.
type noMinutes struct{ limits.Limiter }

func (noMinutes) Started(context.Context, limits.Lease) error { return nil }

// capacityFirst reports a capacity refusal before the other two limits.
type capacityFirst struct{ limits.Limiter }

func (l *capacityFirst) Acquire(ctx context.Context, req limits.Request) (limits.Decision, error) {
	d, err := l.Limiter.Acquire(ctx, req)
	if err == nil && (d.Refused == limits.TrialQuota || d.Refused == limits.Concurrency) {
		// Would the capacity have refused too? Ask with a roomy plan on
		// an account of its own.
		probe := req
		probe.Account += "#probe"
		probe.Plan = limits.Plan{MaxConcurrent: 1 << 20}
		if p, err := l.Limiter.Acquire(ctx, probe); err == nil {
			if p.Refused == limits.SessionFull {
				d.Refused = limits.SessionFull
			} else {
				_ = l.Limiter.Release(ctx, p.Lease)
			}
		}
	}
	return d, err
}

// ignoresContext drops the caller's context.
type ignoresContext struct{ limits.Limiter }

func (l *ignoresContext) Acquire(_ context.Context, req limits.Request) (limits.Decision, error) {
	return l.Limiter.Acquire(context.Background(), req)
}

// leaky starts a goroutine that Close does not stop.
type leaky struct {
	limits.Limiter
	stop chan struct{}
}

func (l *leaky) Close() error {
	go func() { <-l.stop }()
	return l.Limiter.Close()
}
