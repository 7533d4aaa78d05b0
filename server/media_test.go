package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/media/mediatest"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// mediaEnv is an env whose server serves media, and a record of the
// sessions' transitions.
type mediaEnv struct {
	*env
	eng    *media.Engine
	events chan session.Event
}

func newMediaEnv(t *testing.T) *mediaEnv {
	t.Helper()
	me := &mediaEnv{events: make(chan session.Event, 256)}
	me.env = newEnv(t, func(cfg *Config) {
		eng, err := media.New(cfg.Manager, media.Config{ICEServers: []media.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, eng.Close()) }) // after the Manager's Close (cleanups run last first)
		cfg.Media = eng
		cfg.TaskDuration = func(string) time.Duration { return 200 * time.Millisecond }
		me.eng = eng
		cancel := cfg.Manager.Subscribe(func(e session.Event) { me.events <- e })
		t.Cleanup(cancel)
	})
	return me
}

// waitState waits for the session's transition to state and returns it.
func (me *mediaEnv) waitState(id string, state fsm.State) session.Event {
	me.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-me.events:
			if e.SessionID == id && e.To == state {
				return e
			}
		case <-timeout:
			me.t.Fatalf("session never reached %s", state)
		}
	}
}

type v1Created struct {
	created
	SDP         webrtc.SessionDescription `json:"sdp"`
	ICEServers2 []media.ICEServer         `json:"ice_servers2"`
	ICEServers  []media.ICEServer         `json:"ice_servers"`
}

func (me *mediaEnv) state(id string) fsm.State {
	me.t.Helper()
	info, err := me.mgr.Get(context.Background(), "acme", id)
	require.NoError(me.t, err)
	return info.State
}

func (me *mediaEnv) client(offer webrtc.SessionDescription) (*mediatest.Client, webrtc.SessionDescription) {
	me.t.Helper()
	api, err := mediatest.LoopbackAPI()
	require.NoError(me.t, err)
	c, ans, err := mediatest.Answer(api, offer)
	require.NoError(me.t, err)
	me.t.Cleanup(func() { _ = c.PC.Close() })
	return c, ans
}

// The SDK 1.x flow over HTTP: new with an offer, candidates before start,
// start with the answer (connecting), connected by media, a task's talking
// events on the data channel, stop closing the peer.
func TestMediaV1Flow(t *testing.T) {
	me := newMediaEnv(t)
	var s v1Created
	me.data(me.post("key-acme", PathNew, map[string]any{"version": "v1"}), &s)
	require.Equal(t, webrtc.SDPTypeOffer, s.SDP.Type)
	require.Contains(t, s.SDP.SDP, "a=candidate:")
	assert.Equal(t, []media.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}}, s.ICEServers2)
	assert.Equal(t, s.ICEServers2, s.ICEServers)
	assert.NotEmpty(t, s.AccessToken)

	c, ans := me.client(s.SDP)
	cand, err := c.Candidate(5 * time.Second)
	require.NoError(t, err)
	r := me.post("key-acme", PathICE, map[string]any{"session_id": s.SessionID, "candidate": cand})
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, fsm.New, me.state(s.SessionID), "a candidate before start is kept, the session stays new")

	r = me.post("key-acme", PathStart, map[string]any{"session_id": s.SessionID, "sdp": ans})
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.JSONEq(t, bodyNull, r.body)
	me.waitState(s.SessionID, fsm.Connecting)
	me.waitState(s.SessionID, fsm.Connected)
	select {
	case <-c.Opened:
	case <-time.After(10 * time.Second):
		t.Fatal("the data channel did not open")
	}

	var task taskResponse
	me.data(me.post("key-acme", PathTask, map[string]any{"session_id": s.SessionID, "text": "hello"}), &task)
	start, err := c.Message(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"type": "avatar_start_talking", "task_id": task.TaskID}, start)
	stop, err := c.Message(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, "avatar_stop_talking", stop["type"])
	assert.Equal(t, task.TaskID, stop["task_id"])
	assert.GreaterOrEqual(t, stop["duration_ms"], float64(200))

	closed := watchClosed(t, c)
	r = me.post("key-acme", PathStop, map[string]any{"session_id": s.SessionID})
	require.Equal(t, http.StatusOK, r.status, r.body)
	closed("stop did not close the client's peer")
	assert.False(t, me.eng.Has(s.SessionID))
}

func TestMediaClientPeerClosedIsMediaLost(t *testing.T) {
	me := newMediaEnv(t)
	var s v1Created
	me.data(me.post("key-acme", PathNew, map[string]any{}), &s)
	c, ans := me.client(s.SDP)
	r := me.post("key-acme", PathStart, map[string]any{"session_id": s.SessionID, "sdp": ans})
	require.Equal(t, http.StatusOK, r.status, r.body)
	me.waitState(s.SessionID, fsm.Connected)
	<-c.Opened
	require.NoError(t, c.PC.Close())
	ev := me.waitState(s.SessionID, fsm.Closed)
	assert.Equal(t, session.ReasonMediaLost, ev.Reason)
	assert.Equal(t, 0, me.lim.heldCount(), "the slot is released")
}

func TestMediaV2HasNoPeer(t *testing.T) {
	me := newMediaEnv(t)
	r := me.post("key-acme", PathNew, map[string]any{"version": "v2"})
	require.Equal(t, http.StatusOK, r.status, r.body)
	var fields struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &fields))
	keys := []string{}
	for k := range fields.Data {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{"session_id", "access_token", "realtime_endpoint", "url", "is_paid", "session_duration_limit"}, keys)
	var s created
	me.data(r, &s)
	assert.False(t, me.eng.Has(s.SessionID))
	r = me.post("key-acme", PathNew, map[string]any{"version": "v9"})
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.JSONEq(t, bodyInvalid, r.body)
	assert.Equal(t, 1, me.lim.heldCount(), "a refused version takes no slot")
}

func TestMediaStartWithoutAnswerFreesThePeer(t *testing.T) {
	me := newMediaEnv(t)
	var s v1Created
	me.data(me.post("key-acme", PathNew, map[string]any{}), &s)
	require.True(t, me.eng.Has(s.SessionID))
	r := me.post("key-acme", PathStart, map[string]any{"session_id": s.SessionID})
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.False(t, me.eng.Has(s.SessionID))
	assert.Equal(t, fsm.Connecting, me.state(s.SessionID))
	sock := me.open(s.RealtimeEndpoint)
	defer sock.ws.Close()
	me.waitState(s.SessionID, fsm.Connected) // the socket connects it, as without media
}

func TestMediaMalformedChangesNothing(t *testing.T) {
	me := newMediaEnv(t)
	var s v1Created
	me.data(me.post("key-acme", PathNew, map[string]any{}), &s)
	for _, sdp := range []any{"v=0", map[string]any{"type": "answer", "sdp": "junk"}, map[string]any{"type": "offer", "sdp": s.SDP.SDP}, 7} {
		r := me.post("key-acme", PathStart, map[string]any{"session_id": s.SessionID, "sdp": sdp})
		assert.Equal(t, http.StatusBadRequest, r.status, "sdp %v", sdp)
		assert.JSONEq(t, bodyInvalid, r.body, "sdp %v", sdp)
	}
	for _, cand := range []any{"x", map[string]any{"candidate": "candidate:nonsense"}, map[string]any{"candidate": 1}} {
		r := me.post("key-acme", PathICE, map[string]any{"session_id": s.SessionID, "candidate": cand})
		assert.Equal(t, http.StatusBadRequest, r.status, "candidate %v", cand)
		assert.JSONEq(t, bodyInvalid, r.body, "candidate %v", cand)
	}
	assert.Equal(t, fsm.New, me.state(s.SessionID), "nothing changed")
	assert.True(t, me.eng.Has(s.SessionID))
	assert.Equal(t, 1, me.lim.heldCount())

	_, ans := me.client(s.SDP)
	r := me.post("key-acme", PathStart, map[string]any{"session_id": "0123456789abcdef0123456789abcdef", "sdp": ans})
	assert.JSONEq(t, bodyNotFound, r.body)
	r = me.post("key-globex", PathStart, map[string]any{"session_id": s.SessionID, "sdp": ans})
	assert.JSONEq(t, bodyNotFound, r.body, "another account's session")

	r = me.post("key-acme", PathStop, map[string]any{"session_id": s.SessionID})
	require.Equal(t, http.StatusOK, r.status, r.body)
	r = me.post("key-acme", PathStart, map[string]any{"session_id": s.SessionID, "sdp": ans})
	assert.JSONEq(t, `{"code":10005,"message":"Session state wrong: closed"}`, r.body)
	r = me.post("key-acme", PathICE, map[string]any{"session_id": s.SessionID, "candidate": map[string]any{"candidate": ""}})
	assert.JSONEq(t, `{"code":10005,"message":"Session state wrong: closed"}`, r.body)
}

// The realtime socket of a media session does not connect it: only its
// peer does.
func TestMediaSocketDoesNotConnect(t *testing.T) {
	me := newMediaEnv(t)
	var s v1Created
	me.data(me.post("key-acme", PathNew, map[string]any{}), &s)
	c, ans := me.client(s.SDP)
	require.NoError(t, c.PC.Close()) // this client will never run ICE
	r := me.post("key-acme", PathStart, map[string]any{"session_id": s.SessionID, "sdp": ans})
	require.Equal(t, http.StatusOK, r.status, r.body)
	sock := me.open(s.RealtimeEndpoint)
	defer sock.ws.Close()
	<-me.opened
	assert.Equal(t, fsm.Connecting, me.state(s.SessionID), "the socket opened, the media is not up")
}

// mediaNodes starts n nodes sharing a store and relay, each with its own
// Engine.
func mediaNodes(t *testing.T, n int) ([]*env, []*media.Engine, chan session.Event) {
	t.Helper()
	dir := &media.MemoryDirectory{}
	return mediaNodesWith(t, n, func(_ int, cfg *media.Config) { cfg.Directory = dir })
}

// mediaNodesWith is mediaNodes with each node's media.Config adjusted by
// tweak (NodeURL is set).
func mediaNodesWith(t *testing.T, n int, tweak func(i int, cfg *media.Config)) ([]*env, []*media.Engine, chan session.Event) {
	t.Helper()
	store := newSharedStore(t)
	relay := newMemRelay()
	lim := newFakeLimiter(1000)
	events := make(chan session.Event, 256)
	var nodes []*env
	var engines []*media.Engine
	for i := range n {
		mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: testAvatars, Store: store.view()})
		require.NoError(t, err)
		var handler http.Handler
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
		mcfg := media.Config{NodeURL: hs.URL}
		tweak(i, &mcfg)
		eng, err := media.New(mgr, mcfg)
		require.NoError(t, err)
		e := &env{t: t, mgr: mgr, lim: lim, clock: newFakeClock(), opened: make(chan realtime.SocketInfo, 100),
			closed: make(chan realtime.SocketInfo, 100), refused: make(chan Refusal, 100)}
		e.srv, err = New(Config{Manager: mgr, Accounts: testAccts, Avatars: testAvatars, Secret: testSecret, Clock: e.clock,
			Relay: relay, Media: eng, TaskDuration: func(string) time.Duration { return 200 * time.Millisecond }})
		require.NoError(t, err)
		if i == 0 {
			cancel := mgr.Subscribe(func(ev session.Event) { events <- ev })
			t.Cleanup(cancel)
		}
		handler, e.http = e.srv, hs
		t.Cleanup(func() {
			e.http.Close()
			require.NoError(t, e.srv.Close())
			require.NoError(t, mgr.Close(context.Background()))
			require.NoError(t, eng.Close())
		})
		nodes, engines = append(nodes, e), append(engines, eng)
	}
	return nodes, engines, events
}

// A task or an interrupt received by another node reaches the node holding
// the peer (over the relay), and a stop received there closes the peer
// (over the store's events).
func TestMediaTaskAndStopThroughAnotherNode(t *testing.T) {
	nodes, engines, events := mediaNodes(t, 2)
	a, b := nodes[0], nodes[1]
	me := &mediaEnv{env: a, eng: engines[0], events: events}
	var s v1Created
	a.data(a.post("key-acme", PathNew, map[string]any{}), &s)
	c, ans := me.client(s.SDP)
	r := a.post("key-acme", PathStart, map[string]any{"session_id": s.SessionID, "sdp": ans})
	require.Equal(t, http.StatusOK, r.status, r.body)
	me.waitState(s.SessionID, fsm.Connected)
	<-c.Opened

	var task taskResponse
	b.data(b.post("key-acme", PathTask, map[string]any{"session_id": s.SessionID, "text": "hello"}), &task)
	start, err := c.Message(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"type": "avatar_start_talking", "task_id": task.TaskID}, start)
	stop, err := c.Message(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, "avatar_stop_talking", stop["type"])

	closed := watchClosed(t, c)
	r = b.post("key-acme", PathStop, map[string]any{"session_id": s.SessionID})
	require.Equal(t, http.StatusOK, r.status, r.body)
	closed("a stop through another node did not close the peer")
	assert.False(t, engines[0].Has(s.SessionID))
}

// A start and candidates that reach another node than the one holding the
// peer are forwarded to it; its answers come back as they are.
func TestMediaStartAndICEThroughAnotherNode(t *testing.T) {
	nodes, engines, events := mediaNodes(t, 2)
	a, b := nodes[0], nodes[1]
	me := &mediaEnv{env: a, eng: engines[0], events: events}
	var s v1Created
	a.data(a.post("key-acme", PathNew, map[string]any{}), &s)
	require.True(t, engines[0].Has(s.SessionID))
	c, ans := me.client(s.SDP)

	r := b.post("key-acme", PathICE, map[string]any{"session_id": s.SessionID, "candidate": map[string]any{"candidate": "candidate:junk"}})
	assert.JSONEq(t, bodyInvalid, r.body, "the holder's refusal comes back")
	cand, err := c.Candidate(5 * time.Second)
	require.NoError(t, err)
	r = b.post("key-acme", PathICE, map[string]any{"session_id": s.SessionID, "candidate": cand})
	require.Equal(t, http.StatusOK, r.status, r.body)
	r = b.post("key-globex", PathStart, map[string]any{"session_id": s.SessionID, "sdp": ans})
	assert.JSONEq(t, bodyNotFound, r.body, "another account's session, through the holder")
	r = b.post("key-acme", PathStart, map[string]any{"session_id": s.SessionID, "sdp": ans})
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.JSONEq(t, bodyNull, r.body)
	me.waitState(s.SessionID, fsm.Connected)
	assert.False(t, engines[1].Has(s.SessionID), "the peer stays on the node that made it")
}

// When the node holding a session's peer dies, another node closes the
// session with reason media_lost.
func TestMediaHolderDiesOthersCloseMediaLost(t *testing.T) {
	shared := &media.MemoryDirectory{}
	dirs := []*mediatest.Mortal{{Directory: shared}, {Directory: shared}}
	nodes, engines, events := mediaNodesWith(t, 2, func(i int, cfg *media.Config) {
		cfg.Directory = dirs[i]
		cfg.BeatEvery = 50 * time.Millisecond
	})
	a := nodes[0]
	me := &mediaEnv{env: a, eng: engines[0], events: events}
	var s v1Created
	a.data(a.post("key-acme", PathNew, map[string]any{}), &s)
	c, ans := me.client(s.SDP)
	r := a.post("key-acme", PathStart, map[string]any{"session_id": s.SessionID, "sdp": ans})
	require.Equal(t, http.StatusOK, r.status, r.body)
	me.waitState(s.SessionID, fsm.Connected)
	<-c.Opened

	dirs[0].Kill() // a is killed: it beats no more
	t0 := time.Now()
	ev := me.waitState(s.SessionID, fsm.Closed)
	assert.Equal(t, session.ReasonMediaLost, ev.Reason)
	t.Logf("closed by the survivor %v after the holder's last beat could have been sent", time.Since(t0).Round(time.Millisecond))
}

// watchClosed watches the client's peer from now on and returns a function
// that waits up to 10s for it to be closed, failing the test with msg if it
// is not.
func watchClosed(t *testing.T, c *mediatest.Client) func(msg string) {
	closed := make(chan struct{})
	c.PC.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateClosed {
			close(closed)
		}
	})
	return func(msg string) {
		t.Helper()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal(msg)
		}
	}
}
