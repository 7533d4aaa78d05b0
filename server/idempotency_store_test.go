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
