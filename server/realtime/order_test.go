package realtime

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLockSession: a session's turn is held by one caller at a time,
// other sessions' turns are independent, and the hub forgets a turn no one
// holds or waits for.
func TestLockSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newSocketOrder()
		unlock := h.lockSession("s1")
		var order []string
		var mu sync.Mutex
		note := func(s string) {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, s)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			unlock2 := h.lockSession("s1")
			note("second s1")
			unlock2()
		}()
		h.lockSession("s2")() // another session: not blocked
		synctest.Wait()
		mu.Lock()
		assert.Empty(t, order, "the second caller waits for the first")
		mu.Unlock()

		note("first s1 done")
		unlock()
		<-done
		assert.Equal(t, []string{"first s1 done", "second s1"}, order)
		h.mu.Lock()
		defer h.mu.Unlock()
		assert.Empty(t, h.turns, "no turn left")
	})
}

func TestRetiredTokensAreBounded(t *testing.T) {
	o := newSocketOrder()
	for i := range orderMemory + 10 {
		o.retire(fmt.Sprint("t", i))
		o.retire(fmt.Sprint("t", i)) // twice: remembered once
	}
	assert.Equal(t, orderMemory, o.retired.len())
	_, ok := o.retired.get("t0")
	assert.False(t, ok, "the oldest are forgotten first")
	_, ok = o.retired.get(fmt.Sprint("t", orderMemory+9))
	assert.True(t, ok)
	assert.True(t, o.hear("s1", fmt.Sprint("t", orderMemory+9)), "a retired socket's announcement is stale")
}

func TestTokensOrderTheSocketsOfANode(t *testing.T) {
	h := newSocketOrder()
	a, b := h.newToken(), h.newToken()
	na, sa, ok := parseToken(a)
	require.True(t, ok)
	nb, sb, ok := parseToken(b)
	require.True(t, ok)
	assert.Equal(t, na, nb)
	assert.Less(t, sa, sb)
	assert.NotEqual(t, na, newSocketOrder().node, "every node names itself at random")
	for _, bad := range []string{"", "mine", ".1", "node.", "node.!", "node.1.2"} {
		_, _, ok := parseToken(bad)
		assert.False(t, ok, bad)
	}
	// The bound: the oldest (session, node) pairs are forgotten first.
	for i := range orderMemory + 1 {
		assert.False(t, h.hear(fmt.Sprint("s", i), "n.1"))
	}
	assert.Equal(t, orderMemory, h.heard.len())
	_, ok = h.heard.get(heardKey{"s0", "n"})
	assert.False(t, ok, "the oldest pair is forgotten first")
	assert.True(t, h.hear("s1", "n.1"), "a repeat is stale")
	assert.False(t, h.hear("s1", "n.2"), "a later one is not")
}
