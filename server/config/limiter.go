package config

import (
	"time"

	"github.com/streamsession/streamsession/limits"
)

// newMemoryLimiter is the single-node limiter for capacity sessions.
func newMemoryLimiter(capacity int, leaseTTL time.Duration) (limits.Limiter, error) {
	return limits.NewMemory(limits.MemoryConfig{Capacity: capacity, LeaseTTL: leaseTTL}), nil
}
