package observe_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/server"
)

// TestConnCollector: the metrics follow the limiter: two idle keep-alive
// connections at a cap of two, then a third client sheds one.
func TestConnCollector(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lim := server.LimitConnections(ln, 2, server.ShedAfter(0))
	hs := server.NewHTTPServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), server.HTTPConfig{Limiter: lim})
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(lim) }()
	defer func() { hs.Close(); <-done }()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(observe.ConnCollector(lim)))

	clients := make([]*http.Client, 3)
	for i := range clients {
		clients[i] = &http.Client{Transport: &http.Transport{}}
		defer clients[i].CloseIdleConnections()
		resp, err := clients[i].Get("http://" + ln.Addr().String() + "/")
		require.NoError(t, err)
		resp.Body.Close()
		require.Eventually(t, func() bool { return lim.Stats().Idle == min(i+1, 2) }, 5*time.Second, time.Millisecond)
	}
	want := `
# HELP streamsession_http_connections HTTP connections open.
# TYPE streamsession_http_connections gauge
streamsession_http_connections 2
# HELP streamsession_http_connections_idle HTTP connections open and idle (between requests, or before the first).
# TYPE streamsession_http_connections_idle gauge
streamsession_http_connections_idle 2
# HELP streamsession_http_connections_max The cap on open HTTP connections.
# TYPE streamsession_http_connections_max gauge
streamsession_http_connections_max 2
# HELP streamsession_http_connections_shed_total Idle HTTP connections closed to make room for new ones at the cap.
# TYPE streamsession_http_connections_shed_total counter
streamsession_http_connections_shed_total 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want)))
}
