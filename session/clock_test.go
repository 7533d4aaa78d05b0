package session

import (
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wallSlack is how far a SystemClock reading's wall clock may stray outside
// the time.Now readings taken just before and just after it: an anchor lags
// by the delay between its two clock reads (the thread descheduled between
// them), which a loaded machine can make a few milliseconds long. A clock
// that forgot the elapsed time would be off by up to a second.
const wallSlack = 5 * time.Millisecond

// assertBetween checks that c lies between before and after: exactly by
// the monotonic readings, within wallSlack by the wall clock.
func assertBetween(t *testing.T, before, c, after time.Time) {
	t.Helper()
	assert.True(t, strings.Contains(c.String(), " m=+"), "Now() = %v, want a monotonic reading", c)
	assert.False(t, c.Before(before), "Now() = %v before time.Now() = %v taken earlier", c, before)
	assert.False(t, c.After(after), "Now() = %v after time.Now() = %v taken later", c, after)
	assert.GreaterOrEqual(t, c.UnixNano(), before.UnixNano()-int64(wallSlack), "wall clock behind time.Now")
	assert.LessOrEqual(t, c.UnixNano(), after.UnixNano()+int64(wallSlack), "wall clock ahead of time.Now")
}

func TestSystemClockFollowsTimeNow(t *testing.T) {
	var clock SystemClock
	prev := clock.Now()
	for range 2000 {
		before := time.Now()
		c := clock.Now()
		after := time.Now()
		assertBetween(t, before, c, after)
		require.GreaterOrEqual(t, c.Sub(prev), time.Duration(0), "Now() = %v ran back from %v", c, prev)
		prev = c
	}
}

func TestSystemClockReanchors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		age      time.Duration // how long ago the anchor was taken
		reanchor bool
	}{
		{"no anchor yet", -1, true},
		{"fresh", 0, false},
		{"half a second old", reanchorInterval / 2, false},
		{"just over the interval", reanchorInterval + time.Millisecond, true},
		{"an hour old", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var anchor atomic.Pointer[time.Time]
			var old *time.Time
			if tc.age >= 0 {
				a := time.Now().Add(-tc.age) // both clocks' readings moved back
				old = &a
				anchor.Store(old)
			}
			before := time.Now()
			c := systemNow(&anchor)
			after := time.Now()
			assertBetween(t, before, c, after)
			got := anchor.Load()
			require.NotNil(t, got)
			if !tc.reanchor {
				assert.Same(t, old, got, "the anchor was replaced before its time")
				return
			}
			assert.NotSame(t, old, got, "the anchor was kept")
			assertBetween(t, before, *got, after)
			again := systemNow(&anchor)
			assert.Same(t, got, anchor.Load(), "a fresh anchor was replaced")
			assert.False(t, again.Before(c))
		})
	}
}

func TestSystemClockInBubbleIsFake(t *testing.T) {
	systemNow(&clockAnchor) // a real anchor, which the bubble must not use
	outside := clockAnchor.Load()
	synctest.Test(t, func(t *testing.T) {
		var clock SystemClock
		for _, step := range []time.Duration{0, time.Nanosecond, time.Second, time.Hour, 24 * time.Hour} {
			time.Sleep(step)
			assert.Equal(t, time.Now(), clock.Now())
		}
	})
	assert.Same(t, outside, clockAnchor.Load(), "a fake time became the anchor")
}

func BenchmarkClock(b *testing.B) {
	b.Run("SystemClock", func(b *testing.B) {
		var clock SystemClock
		for b.Loop() {
			sinkTime = clock.Now()
		}
	})
	b.Run("time.Now", func(b *testing.B) {
		for b.Loop() {
			sinkTime = time.Now()
		}
	})
}

var sinkTime time.Time
