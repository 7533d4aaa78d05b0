package failovertest

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
)

// cutRelease is a limiter whose next Release, once armed, first makes
// Redis stop answering (cut), so that the release fails on the node's
// client after the session went closing.
type cutRelease struct {
	limits.Limiter
	armed atomic.Bool
	cut   func()
}

func (c *cutRelease) Release(ctx context.Context, l limits.Lease) error {
	if c.armed.CompareAndSwap(true, false) {
		c.cut()
	}
	return c.Limiter.Release(ctx, l)
}

// stall makes the server sleep for d (DEBUG SLEEP: it reads nothing
// meanwhile, and runs what it received once awake) and returns once it
// has stopped answering, with a channel closed when it answers again.
func stall(t *testing.T, srv *redistest.Server, d time.Duration) <-chan struct{} {
	t.Helper()
	admin, probe := srv.Client(), srv.Client()
	awake := make(chan struct{})
	go func() {
		defer close(awake)
		_ = admin.Do(context.Background(), "DEBUG", "SLEEP", d.Seconds()).Err()
	}()
	eventually(t, "redis asleep", 5*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		return probe.Ping(ctx).Err() != nil
	})
	return awake
}

// TestCutCloseFinishes: a stop cut by Redis not answering (its closing
// written after its reply was given up for, or its release failing after
// the closing) answers 503 with a Retry-After, and once Redis answers again
// the close is finished within a few seconds, not after ClosingGrace (30 s
// here): the socket gets closing and closed with the stop's reason, and the
// plan's whole concurrency can be taken at once, exactly.
func TestCutCloseFinishes(t *testing.T) {
	for _, cut := range []string{"closing reply lost", "release failed"} {
		t.Run(cut, func(t *testing.T) {
			srv := redistest.Start(t)
			// No retry of a timed-out command, and a read timeout below the
			// stall, so that the release (whose context has no deadline)
			// fails as it would on a failover.
			url := "redis://" + srv.Addr() + "?read_timeout=500ms&max_retries=-1"
			const sleep = 3 * time.Second
			var awake <-chan struct{}
			var wrap *cutRelease
			opt := nodeOptions{closingGrace: 30 * time.Second}
			if cut == "release failed" {
				opt.wrapLimiter = func(l limits.Limiter) limits.Limiter {
					wrap = &cutRelease{Limiter: l, cut: func() { awake = stall(t, srv, sleep) }}
					return wrap
				}
			}
			secret := newSecret(t)
			a := newNode(t, url, secret, opt)
			b := newNode(t, url, secret, nodeOptions{closingGrace: 30 * time.Second})
			nodes := []*node{a, b}

			c := a.newSession(t, "key-acme")
			require.Equal(t, http.StatusOK, a.call(server.PathStart, "key-acme", named(c.SessionID)).status)
			s := dial(t, b.on(t, c.RealtimeEndpoint))
			require.Equal(t, "connected", s.next(t)["state"])

			if wrap != nil {
				wrap.armed.Store(true)
			} else {
				awake = stall(t, srv, sleep)
			}
			stop := a.call(server.PathStop, "key-acme", named(c.SessionID))
			assert.Equal(t, http.StatusServiceUnavailable, stop.status, "stop: %s", stop.data)
			assert.NotEmpty(t, stop.retryAfter)
			require.NotNil(t, awake)
			<-awake
			resumed := time.Now()

			m := s.next(t)
			assert.Equal(t, "closing", m["state"], "%v", m)
			assert.Equal(t, "stop", m["reason"], "%v", m)
			check := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			defer check.Close()
			eventually(t, "the cut close finished", 5*time.Second, func() bool {
				return len(inState(t, check, fsm.Closing)) == 0 && len(inState(t, check, fsm.Closed)) == 1
			})
			took := time.Since(resumed)
			m = s.next(t)
			assert.Equal(t, "closed", m["state"], "%v", m)
			assert.Equal(t, "stop", m["reason"], "%v", m)
			t.Logf("%s: closed %v after Redis answered again", cut, took.Round(time.Millisecond))

			assertExact(t, nodes, "key-acme", acmeMax)
		})
	}
}
