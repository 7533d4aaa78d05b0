package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/session"

	"github.com/streamsession/streamsession/server/realtime"
)

// memRelay is a realtime.Relay in memory: Publish hands the message to every
// subscription at once, under one lock, so that every subscription sees one
// order (what a single Redis channel gives).
type memRelay struct {
	mu        sync.Mutex
	subs      map[int]func(string, realtime.RelayMessage)
	next      int
	published []realtime.RelayMessage
	err       error // returned by Publish when set
	subErr    error // returned by Subscribe when set
	// log receives every Publish once it returns (delivered or failed);
	// it drops what does not fit.
	log chan publication
	// gate, when set, is called by Publish before it publishes.
	gate func(sessionID string, msg realtime.RelayMessage)
}

// publication is one Publish call as the relay saw it.
type publication struct {
	session string
	msg     realtime.RelayMessage
	err     error
}

func newMemRelay() *memRelay {
	return &memRelay{subs: make(map[int]func(string, realtime.RelayMessage)), log: make(chan publication, 1000)}
}

func (r *memRelay) Publish(_ context.Context, sessionID string, msg realtime.RelayMessage) error {
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		gate(sessionID, msg)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.err
	if err == nil {
		r.published = append(r.published, msg)
		for i := range r.next {
			if fn, ok := r.subs[i]; ok {
				fn(sessionID, msg)
			}
		}
	}
	select {
	case r.log <- publication{sessionID, msg, err}:
	default:
	}
	return err
}

// announcement waits for the next realtime.RelayReplace published for the session
// (a guard of 5 s), skipping other publications: once it returns, every
// node has applied it (Publish delivers before it returns).
func (r *memRelay) announcement(t *testing.T, sessionID string) publication {
	t.Helper()
	guard := time.After(5 * time.Second)
	for {
		select {
		case p := <-r.log:
			if p.session == sessionID && p.msg.Kind == realtime.RelayReplace {
				return p
			}
		case <-guard:
			t.Fatal("no announcement within 5s")
			return publication{}
		}
	}
}

func (r *memRelay) Subscribe(fn func(string, realtime.RelayMessage)) (func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subErr != nil {
		return nil, r.subErr
	}
	id := r.next
	r.next++
	r.subs[id] = fn
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.subs, id)
	}, nil
}

func (r *memRelay) setGate(gate func(sessionID string, msg realtime.RelayMessage)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gate = gate
}

// barrier lets n goroutines through once all n are waiting (a guard of
// 5 s, after which it lets them through and records that it timed out).
type barrier struct {
	mu       sync.Mutex
	n        int
	open     chan struct{}
	timedOut bool
}

func newBarrier(n int) *barrier { return &barrier{n: n, open: make(chan struct{})} }

func (b *barrier) wait() {
	b.mu.Lock()
	if b.n--; b.n == 0 {
		close(b.open)
	}
	b.mu.Unlock()
	select {
	case <-b.open:
	case <-time.After(5 * time.Second):
		b.mu.Lock()
		b.timedOut = true
		b.mu.Unlock()
	}
}

func (b *barrier) failed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.timedOut
}

func (r *memRelay) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *memRelay) subscriptions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}

func (r *memRelay) kinds() []realtime.RelayKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []realtime.RelayKind
	for _, m := range r.published {
		out = append(out, m.Kind)
	}
	return out
}

// sharedStore is one MemoryStore behind several Managers, each watching it
// through its own view, as the nodes of a service share a distributed
// store: every node's Manager hears every change, whichever node made it.
type sharedStore struct {
	mem *session.MemoryStore

	mu       sync.Mutex
	watchers []func(session.Event)
}

func newSharedStore(t *testing.T) *sharedStore {
	st := &sharedStore{mem: session.NewMemoryStore(session.MemoryStoreConfig{})}
	require.NoError(t, st.mem.Watch(st.fanOut))
	return st
}

func (st *sharedStore) fanOut(ev session.Event) {
	st.mu.Lock()
	ws := st.watchers
	st.mu.Unlock()
	for _, w := range ws {
		w(ev)
	}
}

// view returns the Store of one node.
func (st *sharedStore) view() session.Store { return storeView{Store: st.mem, shared: st} }

type storeView struct {
	session.Store
	shared *sharedStore
}

func (v storeView) Watch(fn func(session.Event)) error {
	v.shared.mu.Lock()
	defer v.shared.mu.Unlock()
	v.shared.watchers = append(v.shared.watchers[:len(v.shared.watchers):len(v.shared.watchers)], fn)
	return nil
}

// newNodes starts n server nodes of one service: each its own Manager and
// Server over one shared store, limiter and fake clock, with relay (nil:
// none) in every node's Config.
func newNodes(t *testing.T, n int, relay realtime.Relay) []*env {
	t.Helper()
	store := newSharedStore(t)
	lim := newFakeLimiter(1000)
	clock := newFakeClock()
	var nodes []*env
	for range n {
		mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: testAvatars, Store: store.view()})
		require.NoError(t, err)
		e := &env{
			t: t, mgr: mgr, lim: lim, clock: clock,
			opened: make(chan realtime.SocketInfo, 100), closed: make(chan realtime.SocketInfo, 100), refused: make(chan Refusal, 1000),
			unannounced: make(chan realtime.AnnounceFailure, 100),
		}
		e.srv, err = New(Config{
			Manager: mgr, Accounts: testAccts, Avatars: testAvatars, Secret: testSecret, Clock: clock, Relay: relay,
			Hooks: Hooks{
				SocketOpened:   func(s realtime.SocketInfo) { e.opened <- s },
				SocketClosed:   func(s realtime.SocketInfo) { e.closed <- s },
				AnnounceFailed: func(f realtime.AnnounceFailure) { e.unannounced <- f },
			},
		})
		require.NoError(t, err)
		e.http = httptest.NewServer(e.srv)
		t.Cleanup(func() {
			e.http.Close()
			require.NoError(t, e.srv.Close())
			require.NoError(t, mgr.Close(context.Background()))
		})
		nodes = append(nodes, e)
	}
	return nodes
}

// on returns a realtime endpoint on node e: the socket may open on any
// node sharing the secret.
func (e *env) on(endpoint string) string {
	e.t.Helper()
	u, err := url.Parse(endpoint)
	require.NoError(e.t, err)
	b, err := url.Parse(e.http.URL)
	require.NoError(e.t, err)
	u.Host = b.Host
	return u.String()
}

// settle sends an invalid message and expects its error event next: no
// other message was waiting before it.
func (s *socket) settle() {
	s.t.Helper()
	s.send(`{"type":"nothing"}`)
	s.expect(`{"type":"error","event_type":"error","code":400175,"message":"Invalid parameter"}`)
}

func TestRelaySpeechReachesTheSocketOnAnotherNode(t *testing.T) {
	relay := newMemRelay()
	nodes := newNodes(t, 2, relay)
	a, b := nodes[0], nodes[1]
	c := b.connecting("key-acme") // created and started through b
	s := a.open(a.on(c.RealtimeEndpoint))
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	named := `{"session_id":"` + c.SessionID + `"`

	// A task through b is spoken to the socket on a, with b's answer.
	var t1 taskResponse
	b.data(b.post("key-acme", PathTask, named+`,"text":"Hello, world"}`), &t1)
	assert.Equal(t, int64(770), t1.DurationMS)
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t1.TaskID + `","duration_ms":770}`)
	a.clock.Advance(770 * time.Millisecond)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t1.TaskID + `","duration_ms":770,"interrupted":false}`)
	s.settle() // each event once

	// An interrupt through b cuts short a task given through a.
	var t2 taskResponse
	a.data(a.post("key-acme", PathTask, named+`,"text":"`+strings.Repeat("word ", 100)+`"}`), &t2)
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t2.TaskID + `","duration_ms":28000}`)
	a.clock.Advance(300 * time.Millisecond)
	require.Equal(t, http.StatusOK, b.post("key-acme", PathInterrupt, named+`}`).status)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t2.TaskID + `","duration_ms":300,"interrupted":true}`)
	require.Equal(t, http.StatusOK, b.post("key-acme", PathInterrupt, named+`}`).status) // silent: nothing to say
	s.settle()
	assert.Equal(t, 0, a.clock.Pending(), "no node models a speech any more")

	// The socket's own messages go through the relay too, and a task
	// through b cuts short one spoken from the socket.
	s.send(`{"type":"agent.speak","text":"one two three"}`)
	start := s.message()
	assert.Equal(t, realtime.ServerMessage{Type: realtime.TypeStartTalking, EventType: realtime.TypeStartTalking, TaskID: start.TaskID, DurationMS: 770}, start)
	a.clock.Advance(100 * time.Millisecond)
	var t3 taskResponse
	b.data(b.post("key-acme", PathTask, named+`,"text":"four"}`), &t3)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + start.TaskID + `","duration_ms":100,"interrupted":true}`)
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t3.TaskID + `","duration_ms":500}`)

	// A stop through b ends the speech on every node; the socket hears it
	// before closing.
	require.Equal(t, http.StatusOK, b.post("key-acme", PathStop, named+`}`).status)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t3.TaskID + `","duration_ms":0,"interrupted":true}`)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"stop"}`)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"stop"}`)
	require.NotNil(t, s.closeError())
	assert.Equal(t, 0, a.clock.Pending(), "no speech timer left on any node")
	var speech []realtime.RelayKind
	replaces := 0
	for _, k := range relay.kinds() {
		if k == realtime.RelayReplace {
			replaces++ // the socket's announcement, in no fixed place
			continue
		}
		speech = append(speech, k)
	}
	assert.Equal(t, []realtime.RelayKind{realtime.RelaySpeak, realtime.RelaySpeak, realtime.RelayInterrupt, realtime.RelayInterrupt, realtime.RelaySpeak, realtime.RelaySpeak}, speech)
	assert.Equal(t, 1, replaces, "one socket, one announcement")
}

func TestRelaySocketMovesMidSpeech(t *testing.T) {
	nodes := newNodes(t, 3, newMemRelay())
	a, b, c := nodes[0], nodes[1], nodes[2]
	cr := a.connecting("key-acme")
	named := `{"session_id":"` + cr.SessionID + `"`
	s := a.open(cr.RealtimeEndpoint)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	<-a.opened

	var t1 taskResponse
	c.data(c.post("key-acme", PathTask, named+`,"text":"`+strings.Repeat("a", 100)+`"}`), &t1)
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t1.TaskID + `","duration_ms":7000}`)
	a.clock.Advance(time.Second)

	// The socket drops and reopens on b mid-speech: b hears the end.
	s.ws.Close()
	<-a.closed
	s2 := b.open(b.on(cr.RealtimeEndpoint))
	s2.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	a.clock.Advance(6 * time.Second)
	s2.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t1.TaskID + `","duration_ms":7000,"interrupted":false}`)

	// Tasks and interrupts through a, which held the socket, reach b.
	var t2 taskResponse
	a.data(a.post("key-acme", PathTask, named+`,"text":"`+strings.Repeat("a", 100)+`"}`), &t2)
	s2.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t2.TaskID + `","duration_ms":7000}`)
	a.clock.Advance(2 * time.Second)
	require.Equal(t, http.StatusOK, a.post("key-acme", PathInterrupt, named+`}`).status)
	s2.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t2.TaskID + `","duration_ms":2000,"interrupted":true}`)
	s2.settle()
	assert.Equal(t, 0, a.clock.Pending())
}

func TestRelayPublishFailure(t *testing.T) {
	relay := newMemRelay()
	nodes := newNodes(t, 2, relay)
	a, b := nodes[0], nodes[1]
	cr := a.connecting("key-acme")
	s := a.open(cr.RealtimeEndpoint)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	named := `{"session_id":"` + cr.SessionID + `"`

	down := sserrors.ErrAPIConnectionError.WithStatus(http.StatusServiceUnavailable).WithRetryAfter(time.Second)
	relay.setErr(down)
	r := b.post("key-acme", PathTask, named+`,"text":"hi"}`)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Contains(t, r.body, `"code":400558`)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.Equal(t, http.StatusServiceUnavailable, b.post("key-acme", PathInterrupt, named+`}`).status)
	s.send(`{"type":"agent.speak","text":"hi"}`)
	s.expect(`{"type":"error","event_type":"error","code":400558,"message":"API connection error"}`)
	s.send(`{"type":"agent.interrupt"}`)
	s.expect(`{"type":"error","event_type":"error","code":400558,"message":"API connection error"}`)
	assert.Equal(t, 0, a.clock.Pending(), "nothing was spoken anywhere")

	relay.setErr(nil)
	s.send(`{"type":"agent.speak","text":"hi"}`)
	assert.Equal(t, realtime.TypeStartTalking, s.message().Type)
}

func TestRelaySubscription(t *testing.T) {
	relay := newMemRelay()
	relay.subErr = errors.New("relay down")
	mgr, err := session.NewManager(session.Config{Limiter: newFakeLimiter(10), Avatars: testAvatars})
	require.NoError(t, err)
	defer mgr.Close(context.Background())
	cfg := Config{Manager: mgr, Accounts: testAccts, Avatars: testAvatars, Relay: relay}
	_, err = New(cfg)
	require.ErrorContains(t, err, "relay down")

	relay.subErr = nil
	srv, err := New(cfg)
	require.NoError(t, err)
	assert.Equal(t, 1, relay.subscriptions())
	require.NoError(t, srv.Shutdown(context.Background()))
	assert.Equal(t, 0, relay.subscriptions(), "Shutdown cancels the subscription")
	require.NoError(t, srv.Close())
}

// outcome reads the socket until it is closed or hears
// avatar_start_talking, skipping state updates: "replaced" for a close
// 1000 "replaced by a new connection", "open" for the speech. Anything
// else fails the test.
func (s *socket) outcome() string {
	s.t.Helper()
	s.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, data, err := s.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			require.ErrorAs(s.t, err, &ce)
			require.Equal(s.t, websocket.CloseNormalClosure, ce.Code)
			require.Equal(s.t, "replaced by a new connection", ce.Text)
			return "replaced"
		}
		var m realtime.ServerMessage
		require.NoError(s.t, json.Unmarshal(data, &m))
		switch m.Type {
		case realtime.TypeStateUpdated:
			continue
		case realtime.TypeStartTalking:
			return "open"
		}
		s.t.Fatalf("unexpected message %s", data)
	}
}

// TestRelayReconnectThroughAnotherNodeReplaces opens the socket on a, then
// again on b: a closes its socket as a local reconnect would, and the
// session's events reach b's socket only.
func TestRelayReconnectThroughAnotherNodeReplaces(t *testing.T) {
	relay := newMemRelay()
	nodes := newNodes(t, 2, relay)
	a, b := nodes[0], nodes[1]
	cr := a.connecting("key-acme")
	named := `{"session_id":"` + cr.SessionID + `"`
	old := a.open(cr.RealtimeEndpoint)
	old.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	first := <-a.opened
	require.NoError(t, relay.announcement(t, cr.SessionID).err)

	s := b.open(b.on(cr.RealtimeEndpoint))
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	second := <-b.opened
	assert.Equal(t, first, second, "the same session and account")
	require.NoError(t, relay.announcement(t, cr.SessionID).err)
	ce := old.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
	assert.Equal(t, "replaced by a new connection", ce.Text)
	assert.Equal(t, first, <-a.closed, "the SocketClosed hook, as for a local reconnect")
	assert.False(t, a.srv.rt.Holds(cr.SessionID), "a forgot the replaced socket")
	assert.True(t, b.srv.rt.Holds(cr.SessionID))

	// Events now reach b's socket only, whichever node they go through.
	var t1 taskResponse
	a.data(a.post("key-acme", PathTask, named+`,"text":"Hello, world"}`), &t1)
	s.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + t1.TaskID + `","duration_ms":770}`)
	a.clock.Advance(770 * time.Millisecond)
	s.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + t1.TaskID + `","duration_ms":770,"interrupted":false}`)
	s.settle()
	require.Equal(t, http.StatusOK, a.post("key-acme", PathStop, named+`}`).status)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"stop"}`)
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"stop"}`)
	require.NotNil(t, s.closeError())
	assert.Equal(t, second, <-b.closed)
	assert.Empty(t, a.closed, "a's socket was closed once")
}

// TestRelaySimultaneousSocketsOneSurvives opens a session's socket on
// several nodes at once, many times: each time exactly one survives (the
// one announced last), and every other is closed as replaced. In the held
// case, no announcement is published before both sockets are registered
// and announcing, the race a naive rule (close on any other token) loses
// with both sockets closed.
func TestRelaySimultaneousSocketsOneSurvives(t *testing.T) {
	tests := []struct {
		name string
		on   []int // the node of each socket
		hold bool  // hold the announcements until every socket announces
	}{
		{"two nodes, announcements held", []int{0, 1}, true},
		{"two nodes", []int{0, 1}, false},
		{"two sockets on a and one on b", []int{0, 0, 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			relay := newMemRelay()
			nodes := newNodes(t, 2, relay)
			a := nodes[0]
			survivors := map[int]int{}
			for i := range 20 {
				cr := a.connecting("key-acme")
				named := `{"session_id":"` + cr.SessionID + `"`
				bar := newBarrier(len(tt.on))
				if tt.hold {
					relay.setGate(func(id string, msg realtime.RelayMessage) {
						if id == cr.SessionID && msg.Kind == realtime.RelayReplace {
							bar.wait()
						}
					})
				}
				socks := make([]*socket, len(tt.on))
				var wg sync.WaitGroup
				for j, on := range tt.on {
					n := nodes[on]
					wg.Go(func() {
						ws, resp, err := n.dial(n.on(cr.RealtimeEndpoint), nil)
						if !assert.NoError(t, err) {
							return
						}
						resp.Body.Close()
						socks[j] = &socket{t: t, ws: ws}
					})
				}
				wg.Wait()
				for _, s := range socks {
					require.NotNil(t, s)
					t.Cleanup(func() { s.ws.Close() })
				}
				// Every announcement applied on every node, then a task:
				// the survivor hears it, the others were closed before.
				for range socks {
					require.NoError(t, relay.announcement(t, cr.SessionID).err)
				}
				require.False(t, bar.failed(), "the announcements were not all held")
				require.Equal(t, http.StatusOK, a.post("key-acme", PathTask, named+`,"text":"hi"}`).status)

				winner := -1
				for j, s := range socks {
					if s.outcome() == "open" {
						require.Equal(t, -1, winner, "iteration %d: sockets %d and %d both survived", i, winner, j)
						winner = j
					}
				}
				require.NotEqual(t, -1, winner, "iteration %d: no socket survived", i)
				survivors[tt.on[winner]]++
				for k, n := range nodes {
					held := n.srv.rt.Holds(cr.SessionID)
					if k != tt.on[winner] {
						assert.False(t, held, "node %d forgot its socket", k)
						continue
					}
					assert.True(t, held, "the winner's node holds it")
				}
				relay.setGate(nil)
				require.Equal(t, http.StatusOK, a.post("key-acme", PathStop, named+`}`).status)
				for _, on := range tt.on {
					<-nodes[on].opened
				}
			}
			t.Logf("survivors by node: %v", survivors)
		})
	}
}

// TestRelayAnnouncementPublishFails: a socket whose announcement cannot be
// published is not refused, and the socket on the other node lives on.
func TestRelayAnnouncementPublishFails(t *testing.T) {
	relay := newMemRelay()
	nodes := newNodes(t, 2, relay)
	a, b := nodes[0], nodes[1]
	cr := a.connecting("key-acme")
	old := a.open(cr.RealtimeEndpoint)
	old.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	require.NoError(t, relay.announcement(t, cr.SessionID).err)

	down := sserrors.ErrAPIConnectionError.WithStatus(http.StatusServiceUnavailable).WithRetryAfter(time.Second)
	relay.setErr(down)
	s := b.open(b.on(cr.RealtimeEndpoint))
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	assert.ErrorIs(t, relay.announcement(t, cr.SessionID).err, down)
	s.settle()
	old.settle() // still open
	assert.True(t, a.srv.rt.Holds(cr.SessionID))
	assert.True(t, b.srv.rt.Holds(cr.SessionID))
	assert.Empty(t, a.closed)
	// The failure reaches B's hook, once, naming the socket without its id.
	f := <-b.unannounced
	assert.Equal(t, realtime.SocketInfo{Account: testAccts["key-acme"], SessionHash: session.ShortHash(cr.SessionID)}, f.SocketInfo)
	assert.ErrorIs(t, f.Err, down)
	assert.Empty(t, b.unannounced)
	assert.Empty(t, a.unannounced, "A's announcement went through")
}
