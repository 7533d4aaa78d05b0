package metrics_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/metrics"
	"github.com/streamsession/streamsession/session"
)

// A Manager on the in-memory limiter with its hooks feeding the metrics: a
// session's whole life and one refusal, then the non-zero samples a scrape
// would show. Serve the registry with promhttp.HandlerFor(reg,
// promhttp.HandlerOpts{}).
func Example() {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	met, err := metrics.New(reg, metrics.Config{Backend: "memory"})
	if err != nil {
		panic(err)
	}
	lim := limits.NewMemory(limits.MemoryConfig{})
	defer lim.Close()
	m, err := session.NewManager(session.Config{
		Limiter: lim,
		Avatars: session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
		Hooks:   met.SessionHooks(),
	})
	if err != nil {
		panic(err)
	}

	acct := session.Account{Name: "acme", Plan: limits.Plan{Name: "solo", MaxConcurrent: 1}}
	s, _ := m.Create(ctx, acct, session.CreateOptions{})
	_, err = m.Create(ctx, acct, session.CreateOptions{})
	fmt.Println("second session:", err)
	m.Start(ctx, "acme", s.ID)
	m.Join(ctx, "acme", s.ID)
	m.Stop(ctx, "acme", s.ID)
	if err := m.Close(ctx); err != nil {
		panic(err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			var v float64
			switch {
			case mt.Counter != nil:
				v = mt.GetCounter().GetValue()
			case mt.Gauge != nil:
				v = mt.GetGauge().GetValue()
			case mt.Histogram != nil:
				v = float64(mt.GetHistogram().GetSampleCount()) // the number of calls
			}
			if v != 0 {
				fmt.Printf("%s{%s} %g\n", mf.GetName(), strings.Join(labels, ","), v)
			}
		}
	}
	// Output:
	// second session: streamsession: Concurrent limit reached (code 10007)
	// streamsession_limiter_call_duration_seconds{backend=memory,op=acquire} 2
	// streamsession_limiter_call_duration_seconds{backend=memory,op=release} 1
	// streamsession_session_refusals_total{code=10007} 1
	// streamsession_session_transitions_total{from=closing,to=closed} 1
	// streamsession_session_transitions_total{from=connected,to=closing} 1
	// streamsession_session_transitions_total{from=connecting,to=connected} 1
	// streamsession_session_transitions_total{from=new,to=connecting} 1
	// streamsession_session_transitions_total{from=unknown,to=new} 1
	// streamsession_sessions{state=closed} 1
	// streamsession_sessions_closed_total{reason=stop} 1
}
