package liveavatar_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/liveavatar"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// parallel runs fn m times at once and returns how many returned true.
func parallel(m int, fn func() bool) int {
	var wg sync.WaitGroup
	var ok atomic.Int64
	start := make(chan struct{})
	for range m {
		wg.Go(func() {
			<-start
			if fn() {
				ok.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	return int(ok.Load())
}

// TestConcurrentTokens: of 16 concurrent tokens for a one-session plan,
// exactly one is minted; the others answer 403/4003.
func TestConcurrentTokens(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	var refused atomic.Int64
	got := parallel(16, func() bool {
		a := c.call("POST", liveavatar.PathToken, "key-limited", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711"})
		if a.Status == http.StatusForbidden {
			refused.Add(1)
		}
		return a.Status == http.StatusOK
	})
	assert.Equal(t, 1, got)
	assert.EqualValues(t, 15, refused.Load())
}

// TestConcurrentStarts: a token starts its session once, however many
// starts race.
func TestConcurrentStarts(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	_, token := c.token("key-acme", nil)
	got := parallel(16, func() bool {
		return c.call("POST", liveavatar.PathStart, token, nil).Status == http.StatusCreated
	})
	assert.Equal(t, 1, got)
}

// TestConcurrentSockets: a ws_url opens one socket on a node, however many
// opens race; the others are refused before the upgrade.
func TestConcurrentSockets(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	_, token := c.token("key-acme", nil)
	st := c.start(token)
	var statuses sync.Map
	got := parallel(8, func() bool {
		ws, resp, err := dialLite(t, st.WSURL)
		if err != nil {
			status := 0 // no answer at all: a refusal must be an HTTP answer
			if resp != nil {
				status = resp.StatusCode
			}
			statuses.Store(status, true)
			return false
		}
		_ = ws
		return true
	})
	assert.Equal(t, 1, got)
	statuses.Range(func(k, _ any) bool {
		assert.Equal(t, http.StatusBadRequest, k)
		return true
	})
}

// TestHooks checks the sockets and refusals the hooks see: no token, no
// credential, no raw session id.
func TestHooks(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	record := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, s)
	}
	var refusals []server.Refusal
	n := newNode(t, nodeOptions{socket: func(cfg *liveavatar.Config) {
		cfg.Hooks = liveavatar.Hooks{
			SocketOpened: func(i realtime.SocketInfo) { record("opened " + i.Account.Name + " " + i.Account.Plan.Name) },
			SocketClosed: func(i realtime.SocketInfo) { record("closed " + i.Account.Name + " " + i.Account.Plan.Name) },
			Refused: func(r server.Refusal) {
				mu.Lock()
				defer mu.Unlock()
				refusals = append(refusals, r)
			},
		}
	}})
	c := client{t: t, base: n.httpServer()}
	id, token, ws, _ := connected(t, c)
	c.call("POST", liveavatar.PathStart, token, nil)
	c.call("POST", liveavatar.PathToken, "key-acme", `{}`)
	c.call("POST", liveavatar.PathStop, token, nil)
	ws.closed()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 2
	}, 5e9, 1e7)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"opened acme pro", "closed acme pro"}, seen)
	require.Len(t, refusals, 2)
	assert.Equal(t, server.Refusal{Endpoint: liveavatar.PathStart, Account: accounts["key-acme"], SessionHash: session.ShortHash(id),
		Code: 10003, Status: 400, Err: refusals[0].Err}, refusals[0])
	assert.Equal(t, liveavatar.PathToken, refusals[1].Endpoint)
	assert.Equal(t, http.StatusUnprocessableEntity, refusals[1].Status)
	assert.NotContains(t, refusals[0].Err.Error(), token)
}
