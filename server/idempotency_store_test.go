package server_test

import (
	"testing"

	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/idempotencytest"
)

func TestMemoryIdempotencyContract(t *testing.T) {
	idempotencytest.Run(t, func(*testing.T) server.IdempotencyStore {
		return server.NewMemoryIdempotency(server.MemoryIdempotencyConfig{})
	})
}

func TestMemoryIdempotencyBounded(t *testing.T) {
	idempotencytest.RunBounded(t, func(_ *testing.T, maxKeys int) server.IdempotencyStore {
		return server.NewMemoryIdempotency(server.MemoryIdempotencyConfig{MaxKeysPerAccount: maxKeys})
	})
}
