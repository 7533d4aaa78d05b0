package server_test

import (
	"testing"

	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/ratelimittest"
)

func TestMemoryRateLimiterConformance(t *testing.T) {
	ratelimittest.Run(t, func(*testing.T) server.RateLimiter {
		return server.NewMemoryRateLimiter(server.MemoryRateLimiterConfig{})
	})
}
