package media_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/session"
)

// flakyStore is a MemoryStore whose writes fail with 400558, as a store
// whose backend is unreachable answers, while down is set. Every refused
// Transition is sent on refused. It is safe for concurrent use.
type flakyStore struct {
	*session.MemoryStore
	down    atomic.Bool
	refused chan session.Change
}

var errStoreDown = sserrors.ErrBackendUnavailable.WithCause(errors.New("store unreachable"))

func (s *flakyStore) Insert(ctx context.Context, rec session.Record) (session.Record, error) {
	if s.down.Load() {
		return session.Record{}, errStoreDown
	}
	return s.MemoryStore.Insert(ctx, rec)
}

func (s *flakyStore) Transition(ctx context.Context, account, id string, ch session.Change) (session.Record, fsm.State, error) {
	if s.down.Load() {
		select {
		case s.refused <- ch:
		default:
		}
		return session.Record{}, fsm.Unknown, errStoreDown
	}
	return s.MemoryStore.Transition(ctx, account, id, ch)
}

func (s *flakyStore) Touch(ctx context.Context, account, id string, at time.Time) (session.Record, error) {
	if s.down.Load() {
		return session.Record{}, errStoreDown
	}
	return s.MemoryStore.Touch(ctx, account, id, at)
}

// failure is one call of media.Hooks.Error.
type failure struct {
	sessionHash, op string
	err             error
}

// A peer lost while the store is down leaves a session the Engine could not
// close: that is a failure for Hooks.Error, not a race lost to a closing
// session or a Manager shutting down (both also 400558).
func TestLostPeerWithTheStoreDownIsReported(t *testing.T) {
	store := &flakyStore{MemoryStore: session.NewMemoryStore(session.MemoryStoreConfig{}), refused: make(chan session.Change, 16)}
	failures := make(chan failure, 16)
	r := &rig{t: t, wake: make(chan struct{}, 1)}
	limiter := limits.NewMemory(limits.MemoryConfig{})
	t.Cleanup(func() { limiter.Close() })
	mgr, err := session.NewManager(session.Config{
		Limiter: limiter,
		Store:   store,
		Avatars: session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
		Hooks:   session.Hooks{OnTransition: func(e session.Event) { r.note("session:"+e.To.String(), &e) }},
	})
	require.NoError(t, err)
	r.mgr = mgr
	eng, err := media.New(mgr, media.Config{
		ICEServers:  []media.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}},
		ClosedGrace: closedGrace,
		Hooks: media.Hooks{
			PeerState: func(_ string, s webrtc.PeerConnectionState) { r.note("peer:"+s.String(), nil) },
			Error: func(hash, op string, err error) {
				select {
				case failures <- failure{hash, op, err}:
				default:
				}
			},
		},
	})
	require.NoError(t, err)
	r.eng = eng
	t.Cleanup(func() {
		store.down.Store(false) // the Manager closes what is left
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, mgr.Close(ctx))
		require.NoError(t, eng.Close())
	})

	info, c := connect(t, r)
	store.down.Store(true)
	require.NoError(t, c.pc.GracefulClose())

	select {
	case ch := <-store.refused:
		assert.Equal(t, fsm.EventClose, ch.Event)
		assert.Equal(t, session.ReasonMediaLost, ch.Reason)
	case <-time.After(10 * time.Second):
		t.Fatal("the Engine did not try to close the session of its lost peer")
	}
	select {
	case f := <-failures:
		assert.Equal(t, session.ShortHash(info.ID), f.sessionHash)
		assert.Equal(t, "close", f.op)
		assert.ErrorIs(t, f.err, errStoreDown)
		assert.Equal(t, sserrors.CodeOf(session.ErrClosed), sserrors.CodeOf(f.err), "the same 400558 as a Manager shutting down")
		assert.NotErrorIs(t, f.err, session.ErrManagerClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("the failed close was not reported to Hooks.Error")
	}
	got, err := mgr.Get(context.Background(), acme.Name, info.ID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connected, got.State, "the store kept the session: nothing was closed")
}
