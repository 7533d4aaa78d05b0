package realtime

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSocketConfigWithDefaults(t *testing.T) {
	want := SocketConfig{
		MaxMessageBytes: 64 << 10, SendQueue: 64, PingInterval: 20 * time.Second, PongTimeout: 30 * time.Second,
		WriteTimeout: 10 * time.Second, CloseGrace: 2 * time.Second, MessageRate: 10, MessageBurst: 20,
	}
	assert.Equal(t, want, SocketConfig{}.WithDefaults(), "the zero value")
	assert.Equal(t, want, SocketConfig{SendQueue: -1, MessageRate: -3}.WithDefaults(), "negative values")
	set := SocketConfig{
		MaxMessageBytes: 1 << 20, SendQueue: 8, PingInterval: time.Second, PongTimeout: 0,
		WriteTimeout: time.Second, CloseGrace: time.Millisecond, MessageRate: 50, MessageBurst: 5,
	}
	got := set.WithDefaults()
	set.PongTimeout = 1500 * time.Millisecond // 1.5 × the ping interval set
	assert.Equal(t, set, got, "values set are kept")
}
