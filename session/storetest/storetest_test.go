package storetest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestMemoryStore runs the suite against MemoryStore, in its default form,
// with one shard (every session under one lock) and with a looplab machine
// per session.
func TestMemoryStore(t *testing.T) {
	for name, cfg := range map[string]session.MemoryStoreConfig{
		"default":             {},
		"one shard":           {Shards: 1},
		"machine per session": {MachinePerSession: true},
	} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) session.Store { return session.NewMemoryStore(cfg) })
		})
	}
}
