package redisstore

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/session"
)

// countingHook counts the commands a client sends (pipelines count once:
// one round trip).
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestOneRoundTripEach: every operation is one round trip (once the
// scripts are loaded: the first run of each is EVALSHA, NOSCRIPT, EVAL).
func TestOneRoundTripEach(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.NewClient(&redis.Options{ContextTimeoutEnabled: true})
	hook := &countingHook{}
	s, err := New(client, Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Watch(func(session.Event) {}))
	lifecycle := func(id string) {
		_, err := s.Insert(ctx, newRecord(id))
		require.NoError(t, err)
		for _, ev := range []fsm.Event{fsm.EventStart, fsm.EventJoin} {
			_, _, err := s.Transition(ctx, "acme", id, session.Change{Event: ev, At: t0})
			require.NoError(t, err)
		}
		_, err = s.Touch(ctx, "acme", id, t0)
		require.NoError(t, err)
		_, err = s.Get(ctx, "acme", id)
		require.NoError(t, err)
		_, err = s.List(ctx, "acme")
		require.NoError(t, err)
		require.NoError(t, s.Range(ctx, func(session.Record) bool { return true }))
		_, _, err = s.Due(ctx, t0, nil)
		require.NoError(t, err)
		for _, ev := range []fsm.Event{fsm.EventClose, fsm.EventClosed} {
			_, _, err := s.Transition(ctx, "acme", id, session.Change{Event: ev, At: t0})
			require.NoError(t, err)
		}
		_, err = s.Delete(ctx, "acme", id, 5, t0)
		require.NoError(t, err)
	}
	lifecycle("warm-up")
	client.AddHook(hook)
	tests := []struct {
		name  string
		trips int64
		op    func() error
	}{
		{"insert", 1, func() error { _, err := s.Insert(ctx, newRecord("x")); return err }},
		{"get", 1, func() error { _, err := s.Get(ctx, "acme", "x"); return err }},
		{"list", 1, func() error { _, err := s.List(ctx, "acme"); return err }},
		{"transition", 1, func() error {
			_, _, err := s.Transition(ctx, "acme", "x", session.Change{Event: fsm.EventStart, At: t0})
			return err
		}},
		{"refused transition", 1, func() error {
			_, _, err := s.Transition(ctx, "acme", "x", session.Change{Event: fsm.EventStart, At: t0})
			if err == nil {
				t.Error("start twice succeeded")
			}
			return nil
		}},
		{"touch", 1, func() error { _, err := s.Touch(ctx, "acme", "x", t0); return err }},
		{"range: SSCAN and one pipelined read per page", 2, func() error {
			return s.Range(ctx, func(session.Record) bool { return true })
		}},
		{"due", 1, func() error { _, _, err := s.Due(ctx, t0, nil); return err }},
		{"closing then closed: two transitions", 2, func() error {
			for _, ev := range []fsm.Event{fsm.EventClose, fsm.EventClosed} {
				if _, _, err := s.Transition(ctx, "acme", "x", session.Change{Event: ev, At: t0}); err != nil {
					return err
				}
			}
			return nil
		}},
		{"delete", 1, func() error { _, err := s.Delete(ctx, "acme", "x", 4, t0); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hook.n.Load()
			require.NoError(t, tt.op())
			assert.Equal(t, tt.trips, hook.n.Load()-before, "round trips")
		})
	}
}
