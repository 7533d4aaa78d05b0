package fakeclock_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/internal/fakeclock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestTimersRunInOrderWhenDue(t *testing.T) {
	c, armed := fakeclock.NewReporting(t0, 10)
	var ran []string
	c.AfterFunc(2*time.Second, func() { ran = append(ran, "2s") })
	c.AfterFunc(time.Second, func() { ran = append(ran, "1s") })
	stop := c.AfterFunc(time.Second, func() { ran = append(ran, "stopped") })
	assert.Equal(t, []time.Duration{2 * time.Second, time.Second, time.Second}, []time.Duration{<-armed, <-armed, <-armed})
	assert.Equal(t, 3, c.Pending())
	assert.True(t, stop())
	assert.Equal(t, 2, c.Pending())
	assert.False(t, stop(), "a second stop prevents nothing")

	c.Advance(999 * time.Millisecond)
	assert.Empty(t, ran)
	c.Advance(2 * time.Second)
	assert.Equal(t, []string{"1s", "2s"}, ran)
	assert.Zero(t, c.Pending())
	assert.Equal(t, t0.Add(2999*time.Millisecond), c.Now())
	c.Advance(time.Hour)
	assert.Equal(t, []string{"1s", "2s"}, ran, "a timer runs once")
}

func TestNewDoesNotReport(t *testing.T) {
	c := fakeclock.New(t0)
	for range 1000 { // more than any buffer: nothing blocks
		c.AfterFunc(time.Second, func() {})
	}
	assert.Equal(t, t0, c.Now())
}
