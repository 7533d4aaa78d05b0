package liveavatar_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server/liveavatar"
)

// TestIdleTimeout checks LiveAvatar's 5-minute idle timeout: pushed back by
// a keep-alive over REST, then closing the session with IDLE_TIMEOUT.
func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, nodeOptions{})
		c := n.client()
		id, token := c.token("key-acme", nil)
		c.start(token)
		// What the LITE socket's opening does (a socket needs a network,
		// which a bubble's clock does not wait for).
		_, err := n.mgr.Join(context.Background(), "acme", id)
		require.NoError(t, err)

		time.Sleep(4 * time.Minute)
		c.call("POST", liveavatar.PathKeepAlive, token, nil).data(t, http.StatusOK, nil)
		time.Sleep(4*time.Minute + 59*time.Second)
		synctest.Wait()
		assert.Equal(t, "connected", c.get("key-acme", id).State, "4:59 after the keep-alive")

		time.Sleep(2 * time.Second)
		synctest.Wait()
		got := c.get("key-acme", id)
		assert.Equal(t, "closed", got.State, "5:01 after the keep-alive")
		require.NotNil(t, got.CloseReason)
		assert.Equal(t, "IDLE_TIMEOUT", *got.CloseReason)
		assert.Equal(t, int64(9*60), got.Duration, "from start to the close")
	})
}

// TestMaxSessionDuration checks that max_session_duration, counted from
// start, closes the session with MAX_DURATION_REACHED.
func TestMaxSessionDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, nodeOptions{})
		c := n.client()
		id, token := c.token("key-acme", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711", "max_session_duration": 90})
		time.Sleep(time.Minute) // not counted: the session has not started
		c.start(token)
		_, err := n.mgr.Join(context.Background(), "acme", id)
		require.NoError(t, err)

		time.Sleep(89 * time.Second)
		c.call("POST", liveavatar.PathKeepAlive, token, nil).data(t, http.StatusOK, nil)
		synctest.Wait()
		assert.Equal(t, "connected", c.get("key-acme", id).State)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		got := c.get("key-acme", id)
		assert.Equal(t, "closed", got.State)
		require.NotNil(t, got.CloseReason)
		assert.Equal(t, "MAX_DURATION_REACHED", *got.CloseReason)
	})
}

// TestUnstartedSessionReaped checks that a token never started frees its
// slot after the join timeout, as ZOMBIE_SESSION_REAP.
func TestUnstartedSessionReaped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, nodeOptions{})
		c := n.client()
		id, _ := c.token("key-limited", nil)
		time.Sleep(5*time.Minute + time.Second)
		synctest.Wait()
		got := c.get("key-limited", id)
		assert.Equal(t, "closed", got.State)
		require.NotNil(t, got.CloseReason)
		assert.Equal(t, "ZOMBIE_SESSION_REAP", *got.CloseReason)
		c.token("key-limited", nil) // its slot is free
	})
}
