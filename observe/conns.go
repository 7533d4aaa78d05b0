package observe

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamsession/streamsession/server"
)

// ConnCollector returns the metrics of a server.ConnLimiter, read from
// its Stats at each scrape, for a Prometheus registry:
//
//	streamsession_http_connections            gauge: connections open
//	streamsession_http_connections_idle       gauge: of them, idle (keep-alive, or no request yet)
//	streamsession_http_connections_max        gauge: the cap
//	streamsession_http_connections_shed_total counter: idle connections closed to make room
func ConnCollector(l *server.ConnLimiter) prometheus.Collector {
	return &connCollector{l: l,
		open: prometheus.NewDesc("streamsession_http_connections", "HTTP connections open.", nil, nil),
		idle: prometheus.NewDesc("streamsession_http_connections_idle", "HTTP connections open and idle (between requests, or before the first).", nil, nil),
		max:  prometheus.NewDesc("streamsession_http_connections_max", "The cap on open HTTP connections.", nil, nil),
		shed: prometheus.NewDesc("streamsession_http_connections_shed_total", "Idle HTTP connections closed to make room for new ones at the cap.", nil, nil),
	}
}

type connCollector struct {
	l                     *server.ConnLimiter
	open, idle, max, shed *prometheus.Desc
}

func (c *connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.idle
	ch <- c.max
	ch <- c.shed
}

func (c *connCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Stats()
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.Open))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(st.Idle))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(c.l.Max()))
	ch <- prometheus.MustNewConstMetric(c.shed, prometheus.CounterValue, float64(st.Shed))
}
