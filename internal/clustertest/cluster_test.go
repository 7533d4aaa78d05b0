package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOneServiceOnThreeNodes: a session created through A, started through
// B with A's bearer token, its socket on A, listed from C and stopped
// through C: the socket on A receives closing and closed.
func TestOneServiceOnThreeNodes(t *testing.T) {
	c := newCluster(t, 3)
	a, b, cc := c.nodes[0], c.nodes[1], c.nodes[2]

	tok := call(a.base, "POST", "/v1/streaming.create_token", "key-a0", map[string]any{})
	require.Equal(t, 200, tok.status, "%v", tok)
	var token struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.Unmarshal(tok.data, &token))

	s := newSession(t, b, token.Token) // the token minted on a works on b
	require.Equal(t, 200, sessionCall(t, cc, "/v1/streaming.start", token.Token, s.SessionID).status)
	assert.Equal(t, map[string]string{s.SessionID: "connecting"}, list(t, a, "key-a0"))

	// The endpoint names b (where streaming.new ran); the socket may open on
	// any node sharing the secret: open it on a.
	sock := dial(t, onNode(t, s.RealtimeEndpoint, a))
	waitFor(t, "the socket sees connected", 5*time.Second, func() bool { return len(sock.received()) == 1 })
	assert.Equal(t, map[string]string{s.SessionID: "connected"}, list(t, cc, "key-a0"))

	stop := sessionCall(t, cc, "/v1/streaming.stop", "key-a0", s.SessionID)
	require.Equal(t, 200, stop.status, "%v", stop)
	select {
	case <-sock.closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("the socket on a was not closed; it received %v", sock.received())
	}
	assert.Equal(t, []string{"connected", "closing", "closed"}, sock.received())
	assert.Empty(t, list(t, b, "key-a0"))
	again := sessionCall(t, a, "/v1/streaming.stop", "key-a0", s.SessionID)
	assert.Equal(t, 10005, again.code, "stopped everywhere: %v", again)
	assert.False(t, c.slotHeld(t, "a0", s.SessionID))

	for _, n := range c.nodes {
		n.stop(t)
	}
}

// TestLimitsHoldUnderLoad: 3 nodes × 8 goroutines creating, starting and
// stopping sessions through different nodes, while the test samples the
// live slots in Redis (one atomic script on Redis's clock) as fast as it
// can: the service's and each account's count never exceed their limits.
func TestLimitsHoldUnderLoad(t *testing.T) {
	c := newCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var maxSeen [5]atomic.Int64
	var samples atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			got, err := c.slots(ctx)
			if err != nil || len(got) != 6 {
				continue
			}
			samples.Add(1)
			for i := range 5 {
				for {
					cur := maxSeen[i].Load()
					if got[i] <= cur || maxSeen[i].CompareAndSwap(cur, got[i]) {
						break
					}
				}
			}
		}
	}()

	var granted, refusedConcurrency, refusedCapacity, other atomic.Int64
	var mu sync.Mutex
	var unexpected []string
	deadline := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Go(func() {
			key := "key-" + proAccounts[w%len(proAccounts)]
			for i := 0; time.Now().Before(deadline); i++ {
				n := c.nodes[(w+i)%3]
				a := call(n.base, "POST", "/v1/streaming.new", key, map[string]any{})
				switch {
				case a.status == 200:
					granted.Add(1)
					var d newData
					_ = json.Unmarshal(a.data, &d)
					start := sessionCall(t, c.nodes[(w+i+1)%3], "/v1/streaming.start", key, d.SessionID)
					stop := sessionCall(t, c.nodes[(w+i+2)%3], "/v1/streaming.stop", key, d.SessionID)
					if start.status != 200 || stop.status != 200 {
						mu.Lock()
						unexpected = append(unexpected, "start "+start.String()+" stop "+stop.String())
						mu.Unlock()
					}
				case a.code == 10007:
					refusedConcurrency.Add(1)
				case a.code == 10014:
					refusedCapacity.Add(1)
				default:
					other.Add(1)
					mu.Lock()
					unexpected = append(unexpected, "new "+a.String())
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	cancel()
	<-sampled

	t.Logf("granted %d, refused 10007 %d, refused 10014 %d, other %d; %d samples; max live slots: service %d, accounts %d %d %d %d",
		granted.Load(), refusedConcurrency.Load(), refusedCapacity.Load(), other.Load(), samples.Load(),
		maxSeen[0].Load(), maxSeen[1].Load(), maxSeen[2].Load(), maxSeen[3].Load(), maxSeen[4].Load())
	assert.Empty(t, unexpected)
	assert.Positive(t, granted.Load())
	assert.Positive(t, refusedConcurrency.Load()+refusedCapacity.Load(), "the limits were reached")
	assert.Greater(t, samples.Load(), int64(100))
	assert.LessOrEqual(t, maxSeen[0].Load(), int64(capacity), "the service's capacity")
	for i := 1; i < 5; i++ {
		assert.LessOrEqual(t, maxSeen[i].Load(), int64(perAccount), "account %s", proAccounts[i-1])
	}
	got, err := c.slots(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []int64{0, 0, 0, 0, 0, 0}, got, "every stopped session's slot is free")
}

// TestKilledNodesSessionsGoOn: SIGKILL a node holding sessions (one with
// its socket on another node). Its sessions belong to the service: long
// after the lease TTL they are open and hold their slots, the socket on a
// survivor sees no change, their clients go on through the survivors (a
// start, a socket), and a stop through a survivor frees the slot at once.
func TestKilledNodesSessionsGoOn(t *testing.T) {
	c := newCluster(t, 3)
	victim, a, b := c.nodes[2], c.nodes[0], c.nodes[1]

	var theirs []newData
	for range 3 {
		theirs = append(theirs, newSession(t, victim, "key-a1"))
	}
	for _, s := range theirs[:2] {
		require.Equal(t, 200, sessionCall(t, victim, "/v1/streaming.start", "key-a1", s.SessionID).status)
	}
	sock := dial(t, onNode(t, theirs[0].RealtimeEndpoint, a))
	waitFor(t, "connected", 5*time.Second, func() bool { return len(sock.received()) == 1 })

	ours := newSession(t, a, "key-a2")
	require.Equal(t, 200, sessionCall(t, b, "/v1/streaming.start", "key-a2", ours.SessionID).status)

	victim.kill()
	// Twice the lease TTL: a renewed lease would have expired by now.
	time.Sleep(2 * leaseTTL)
	for _, s := range theirs {
		assert.True(t, c.slotHeld(t, "a1", s.SessionID), "the killed node's session %s holds its slot", s.SessionID)
	}
	assert.Equal(t, map[string]string{theirs[0].SessionID: "connected", theirs[1].SessionID: "connecting", theirs[2].SessionID: "new"},
		list(t, a, "key-a1"), "the killed node's sessions are open")
	assert.Equal(t, []string{"connected"}, sock.received(), "the socket on a survivor saw no change")

	// Their clients go on through the survivors.
	require.Equal(t, 200, sessionCall(t, a, "/v1/streaming.start", "key-a1", theirs[2].SessionID).status)
	sock1 := dial(t, onNode(t, theirs[1].RealtimeEndpoint, b))
	waitFor(t, "the reopened socket sees connected", 5*time.Second, func() bool { return len(sock1.received()) == 1 })
	assert.Equal(t, map[string]string{theirs[0].SessionID: "connected", theirs[1].SessionID: "connected", theirs[2].SessionID: "connecting"},
		list(t, b, "key-a1"))

	// A stop through a survivor frees the slot at once.
	stop := sessionCall(t, b, "/v1/streaming.stop", "key-a1", theirs[0].SessionID)
	require.Equal(t, 200, stop.status, "%v", stop)
	assert.False(t, c.slotHeld(t, "a1", theirs[0].SessionID), "freed by the stop")
	select {
	case <-sock.closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("the socket on a survivor was not closed; it received %v", sock.received())
	}
	assert.Equal(t, []string{"connected", "closing", "closed"}, sock.received())
	for _, s := range theirs[1:] {
		require.Equal(t, 200, sessionCall(t, a, "/v1/streaming.stop", "key-a1", s.SessionID).status)
		assert.False(t, c.slotHeld(t, "a1", s.SessionID))
	}
	assert.Empty(t, list(t, a, "key-a1"))
	assert.Equal(t, map[string]string{ours.SessionID: "connecting"}, list(t, b, "key-a2"), "the survivors' session is untouched")
	assert.True(t, c.slotHeld(t, "a2", ours.SessionID))
	got, err := c.slots(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 0, 0, 1, 0, 0}, got, "only the survivors' session holds a slot")
}

// TestRedisFailures: pauses (CLIENT PAUSE, DEBUG SLEEP), a script flush,
// and a kill and restart of redis-server. Calls made meanwhile return by
// the node's request deadline with 503/400558; running sessions are not
// closed by an outage; no slot leaks; no trial minute is counted twice.
func TestRedisFailures(t *testing.T) {
	const requestTimeout = 500 * time.Millisecond
	// Leases outlive the pauses (a pause longer than the lease TTL would
	// expire those not kept yet: Redis's clock runs on).
	const leaseTTL = 6 * time.Second
	const pause = 1500 * time.Millisecond
	c := newCluster(t, 2, "-request-timeout", requestTimeout.String(), "-lease-ttl", leaseTTL.String())
	a, b := c.nodes[0], c.nodes[1]
	ctx := context.Background()

	// A connected session with its socket on a, and a started trial session.
	pro := newSession(t, a, "key-a0")
	require.Equal(t, 200, sessionCall(t, b, "/v1/streaming.start", "key-a0", pro.SessionID).status)
	sock := dial(t, pro.RealtimeEndpoint)
	waitFor(t, "connected", 5*time.Second, func() bool { return len(sock.received()) == 1 })
	trial := newSession(t, b, "key-trial")
	trialStarted := time.Now()
	require.Equal(t, 200, sessionCall(t, a, "/v1/streaming.start", "key-trial", trial.SessionID).status)

	// during begins an outage (begin returns once Redis has stopped
	// answering, and gives the wait for its end), then requires each
	// node's streaming.new to answer 503/400558 within the request deadline:
	// the outage outlasts both calls.
	during := func(what string, begin func() (ended func())) {
		t.Helper()
		ended := begin()
		for _, n := range c.nodes {
			start := time.Now()
			got := call(n.base, "POST", "/v1/streaming.new", "key-a3", map[string]any{})
			took := time.Since(start)
			t.Logf("%s: streaming.new via %s answered %d/%d after %v", what, n.name, got.status, got.code, took.Round(time.Millisecond))
			assert.Equal(t, 503, got.status, "%s via %s: %v", what, n.name, got)
			assert.Equal(t, 400558, got.code, "%s via %s", what, n.name)
			assert.Less(t, took, requestTimeout+time.Second, "%s via %s answered after %v", what, n.name, took)
		}
		ended()
	}
	// answers reports whether Redis answers a PING within 100 ms.
	probe := c.redis.NewClient(&redis.Options{MaxRetries: -1, ContextTimeoutEnabled: true})
	answers := func() bool {
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		return probe.Ping(ctx).Err() == nil
	}
	// untilAnswers waits until Redis answers again.
	untilAnswers := func() {
		waitFor(t, "Redis answers again", 10*time.Second, answers)
	}
	during("CLIENT PAUSE", func() func() {
		// In effect for every later command once it is answered.
		require.NoError(t, c.admin.Do(ctx, "CLIENT", "PAUSE", 2*pause.Milliseconds(), "ALL").Err())
		return untilAnswers
	})
	during("DEBUG SLEEP", func() func() {
		slept := make(chan struct{})
		go func() {
			defer close(slept)
			_ = c.redis.Client().Do(ctx, "DEBUG", "SLEEP", strconv.FormatFloat((pause+pause/2).Seconds(), 'f', 3, 64)).Err()
		}()
		waitFor(t, "Redis sleeps", 5*time.Second, func() bool { return !answers() })
		return func() { <-slept; untilAnswers() }
	})
	require.NoError(t, c.admin.ScriptFlush(ctx).Err())

	// Wait a while: nothing was closed meanwhile.
	time.Sleep(pause + pause/2)
	assert.Equal(t, map[string]string{pro.SessionID: "connected"}, list(t, b, "key-a0"), "an outage closes nothing")
	assert.Equal(t, map[string]string{trial.SessionID: "connecting"}, list(t, a, "key-trial"))
	assert.Equal(t, []string{"connected"}, sock.received(), "the socket saw no change")
	assert.True(t, c.slotHeld(t, "a0", pro.SessionID), "the slot survived the pauses")

	// After SCRIPT FLUSH every script is loaded again (NOSCRIPT handled).
	stop := sessionCall(t, b, "/v1/streaming.stop", "key-trial", trial.SessionID)
	require.Equal(t, 200, stop.status, "%v", stop)
	trialRan := time.Since(trialStarted)
	used, err := c.admin.HGetAll(ctx, "{"+c.prefix+"}:used:trial").Result()
	require.NoError(t, err)
	var usedMs int64
	for _, v := range used {
		n, _ := strconv.ParseInt(v, 10, 64)
		usedMs += n
	}
	assert.Positive(t, usedMs)
	assert.LessOrEqual(t, usedMs, trialRan.Milliseconds(), "trial minutes counted once: %dms used of %v run", usedMs, trialRan)

	// Kill redis-server: calls fail fast with 503; restart it (empty: it
	// persists nothing): the nodes serve again.
	c.redis.Kill()
	for _, n := range c.nodes {
		start := time.Now()
		got := call(n.base, "POST", "/v1/streaming.new", "key-a3", map[string]any{})
		assert.Equal(t, 503, got.status, "redis down, via %s: %v", n.name, got)
		assert.Equal(t, 400558, got.code)
		assert.Less(t, time.Since(start), requestTimeout+time.Second)
	}
	c.redis.Restart()
	fresh := newSession(t, b, "key-a3")
	require.Equal(t, 200, sessionCall(t, a, "/v1/streaming.stop", "key-a3", fresh.SessionID).status)
	// The data set was lost with the restart: the sessions are gone, and the
	// socket hears it (closing, then closed, with reason store_lost) when
	// the node notices.
	select {
	case <-sock.closed:
	case <-time.After(15 * time.Second):
		t.Fatalf("the socket was not closed after Redis lost the session; it received %v", sock.received())
	}
	assert.Equal(t, []string{"connected", "closing", "closed"}, sock.received())

	waitFor(t, "no live slot left after the lease TTL", 2*leaseTTL, func() bool {
		got, err := c.slots(ctx)
		return err == nil && fmt.Sprint(got) == "[0 0 0 0 0 0]"
	})
	for _, n := range c.nodes {
		n.stop(t)
	}
}
