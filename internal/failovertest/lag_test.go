package failovertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/server"
)

// TestSentinelFailoverLaggingReplica kills the master while its replica
// lags behind (it sleeps, and a large write fills the replication link), so
// that the newest writes exist on the master alone. It logs the sessions
// answered in the two seconds before the kill that the failover lost,
// without WAIT and with redis_wait_replicas 1, and checks that with WAIT
// every lost session was reported short (redis_wait_short_total).
func TestSentinelFailoverLaggingReplica(t *testing.T) {
	for _, wait := range []int{0, 1} {
		t.Run(fmt.Sprintf("wait=%d", wait), func(t *testing.T) { testLaggingReplica(t, wait) })
	}
}

func testLaggingReplica(t *testing.T, wait int) {
	ss := redistest.StartSentinels(t, redistest.SentinelOptions{DownAfter: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var short atomic.Int64
	opt := nodeOptions{closingGrace: 2 * time.Second, waitReplicas: wait, onWaitShort: func() { short.Add(1) }}
	secret := newSecret(t)
	nodes := []*node{newNode(t, ss.URL(), secret, opt), newNode(t, ss.URL(), secret, opt)}

	var (
		mu      sync.Mutex
		results []loadResult
	)
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			default:
			}
			n, m := nodes[i%2], nodes[(i+1)%2]
			r := loadResult{at: time.Now(), path: server.PathNew, answer: n.call(server.PathNew, "key-load", `{}`)}
			r.done = time.Now()
			if r.answer.status == http.StatusOK {
				var c created
				_ = json.Unmarshal(r.answer.data, &c)
				r.id = c.SessionID
			}
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
			if r.id != "" {
				// Stopped at once, so the plan never fills; a stopped
				// session stays readable (closed) for its retention.
				_ = m.call(server.PathStop, "key-load", named(r.id))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	okNews := func(after time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.answer.status == http.StatusOK && r.at.After(after) {
				n++
			}
		}
		return n
	}
	eventually(t, "the load running", 10*time.Second, func() bool { return okNews(time.Time{}) >= 10 })

	// The replica stops reading for 1.5 s, and 32 MB written meanwhile
	// fill the link, so that what follows stays in the master's buffer.
	servers := ss.Servers()
	master, replica := servers[0], servers[1]
	sleeping := make(chan error, 1)
	go func() { sleeping <- replica.Client().Do(ctx, "DEBUG", "SLEEP", "1.5").Err() }()
	time.Sleep(100 * time.Millisecond) // the replica is asleep: nothing to poll it with
	require.NoError(t, master.Client().Set(ctx, "{fo}:blob", strings.Repeat("x", 32<<20), 0).Err())
	time.Sleep(700 * time.Millisecond) // sessions made while the replica lags
	kill := time.Now()
	master.Kill()
	require.NoError(t, <-sleeping)
	_, err := ss.WaitFailover(ctx, master)
	require.NoError(t, err)
	eventually(t, "streaming.new working again", 15*time.Second, func() bool { return okNews(kill) >= 3 })
	close(stopLoad)
	<-loadDone

	// A session answered 200 before the kill is lost when the new master
	// does not know it.
	recent, lost := 0, 0
	for _, r := range results {
		assert.False(t, r.answer.status >= 500 && r.answer.status != http.StatusServiceUnavailable, "%s: %d", r.path, r.answer.status)
		if r.id == "" || !r.done.Before(kill) || !r.done.After(kill.Add(-2*time.Second)) {
			continue
		}
		recent++
		var err error
		eventually(t, "the session read", 5*time.Second, func() bool {
			_, err = nodes[0].mgr.Get(ctx, "load", r.id)
			return err == nil || sserrors.CodeOf(err) == sserrors.CodeSessionNotFound
		})
		if err != nil {
			lost++
		}
	}
	t.Logf("lagging replica, redis_wait_replicas=%d: sessions answered in the 2 s before the kill: %d, lost by the failover: %d; WAITs short: %d",
		wait, recent, lost, short.Load())
	if wait > 0 {
		assert.LessOrEqual(t, int64(lost), short.Load(), "every session lost was reported short")
	}
}
