package media_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/media/mediatest"
	"github.com/streamsession/streamsession/session"
)

var acme = session.Account{Name: "acme", Plan: limits.PaidPlan}

// rig is a Manager with an Engine on loopback, and a record of what both
// reported, in order.
type rig struct {
	t   *testing.T
	mgr *session.Manager
	eng *media.Engine

	mu     sync.Mutex
	log    []string // "peer:<state>" and "session:<state>" in the order seen
	events []session.Event
	wake   chan struct{}
}

// closedGrace is the rig's Config.ClosedGrace.
const closedGrace = 100 * time.Millisecond

func newRig(t *testing.T, joinTimeout time.Duration) *rig {
	t.Helper()
	return newRigWith(t, joinTimeout, closedGrace)
}

// newRigWith is newRig with the Engine's ClosedGrace.
func newRigWith(t *testing.T, joinTimeout, grace time.Duration) *rig {
	t.Helper()
	r := &rig{t: t, wake: make(chan struct{}, 1)}
	limiter := limits.NewMemory(limits.MemoryConfig{})
	t.Cleanup(func() { limiter.Close() })
	mgr, err := session.NewManager(session.Config{
		Limiter:     limiter,
		Avatars:     session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
		JoinTimeout: joinTimeout,
		Hooks: session.Hooks{OnTransition: func(e session.Event) {
			r.note("session:"+e.To.String(), &e)
		}},
	})
	require.NoError(t, err)
	r.mgr = mgr
	eng, err := media.New(mgr, media.Config{
		ICEServers:  []media.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}},
		ClosedGrace: grace,
		Hooks: media.Hooks{
			PeerState: func(_ string, s webrtc.PeerConnectionState) { r.note("peer:"+s.String(), nil) },
			Error:     func(_ string, op string, err error) { t.Errorf("media hook error %s: %v", op, err) },
		},
	})
	require.NoError(t, err)
	r.eng = eng
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, mgr.Close(ctx))
		require.NoError(t, eng.Close())
	})
	return r
}

func (r *rig) note(s string, e *session.Event) {
	r.mu.Lock()
	r.log = append(r.log, s)
	if e != nil {
		r.events = append(r.events, *e)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds over the log (at most 10 s).
func (r *rig) waitFor(what string, cond func(log []string, events []session.Event) bool) {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok := cond(r.log, r.events)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.wake:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			r.t.Fatalf("timed out waiting for %s; log %v", what, r.log)
		}
	}
}

func (r *rig) waitSession(id string, to fsm.State) session.Event {
	r.t.Helper()
	var got session.Event
	r.waitFor("session "+to.String(), func(_ []string, events []session.Event) bool {
		for _, e := range events {
			if e.SessionID == id && e.To == to {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

func index(log []string, s string) int {
	for i, l := range log {
		if l == s {
			return i
		}
	}
	return -1
}

// client is a mediatest.Client with its stream ids.
type client struct {
	*mediatest.Client
	pc *webrtc.PeerConnection
}

func loopbackAPI(t testing.TB) *webrtc.API {
	api, err := mediatest.LoopbackAPI()
	require.NoError(t, err)
	return api
}

// answer makes a client peer for offer and returns it with its answer.
func answer(t testing.TB, api *webrtc.API, offer webrtc.SessionDescription) (*client, webrtc.SessionDescription) {
	c, ans, err := mediatest.Answer(api, offer)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.PC.Close() })
	return &client{Client: c, pc: c.PC}, ans
}

func (c *client) nextMessage(t *testing.T) map[string]any {
	t.Helper()
	m, err := c.Message(10 * time.Second)
	require.NoError(t, err)
	return m
}
