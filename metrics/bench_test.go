package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/metrics"
	"github.com/streamsession/streamsession/session"
)

// BenchmarkHooks measures what a hook adds to a Manager call. The baseline
// is the same update through a label lookup (WithLabelValues), which the
// hooks avoid by looking their children up once in New.
func BenchmarkHooks(b *testing.B) {
	met, err := metrics.New(prometheus.NewRegistry(), metrics.Config{})
	if err != nil {
		b.Fatal(err)
	}
	h := met.SessionHooks()
	e := session.Event{From: fsm.Connecting, To: fsm.Connected}
	b.Run("transition", func(b *testing.B) {
		for b.Loop() {
			h.OnTransition(e)
		}
	})
	b.Run("limiter", func(b *testing.B) {
		for b.Loop() {
			h.OnLimiter(session.LimiterAcquire, 30*time.Microsecond, nil)
		}
	})
	b.Run("baseline-label-lookup", func(b *testing.B) {
		gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "g"}, []string{"state"})
		counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c"}, []string{"from", "to"})
		for b.Loop() {
			gauge.WithLabelValues("connecting").Dec()
			gauge.WithLabelValues("connected").Inc()
			counter.WithLabelValues("connecting", "connected").Inc()
		}
	})
}
