package streamsession_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// End-to-end tests: the whole service, built from a JSON configuration as a
// user writes it (package service), over real HTTP and a real WebSocket
// client. The harness is in e2e_harness_test.go.

// serviceConfig is the configuration of most tests: two paid accounts, a
// trial one, and avatars of every kind.
const serviceConfig = `{
  "capacity": 100,
  "join_timeout_seconds": 300,
  "closed_retention_seconds": 600,
  "plans": {
    "trial": {"max_concurrent": 3, "trial": true, "monthly_minutes": 300, "session_duration_limit": 600},
    "pro":   {"max_concurrent": 100}
  },
  "accounts": [
    {"api_key": "acme-key",   "name": "acme",   "plan": "pro"},
    {"api_key": "globex-key", "name": "globex", "plan": "pro"},
    {"api_key": "trial-key",  "name": "tryout", "plan": "trial"}
  ],
  "avatars": [
    {"avatar_id": "Wayne_20240711", "public": true, "status": "ACTIVE", "default": true},
    {"avatar_id": "acme_private",   "owner": "acme", "status": "ACTIVE", "default_voice": "acme-voice"},
    {"avatar_id": "globex_private", "owner": "globex"},
    {"avatar_id": "retired",        "public": true, "status": "INACTIVE"},
    {"avatar_id": "acme_retired",   "owner": "acme", "status": "inactive"},
    {"avatar_id": "unowned"}
  ]
}`

var (
	acme   = apiKey("acme-key")
	globex = apiKey("globex-key")
	tryout = apiKey("trial-key")
)

// The session endpoints, each with a valid body naming the session.
var sessionCalls = []struct {
	path string
	body func(id string) string
}{
	{server.PathStart, idBody},
	{server.PathICE, iceBody},
	{server.PathTask, func(id string) string { return taskBody(id, "Hello, world") }},
	{server.PathInterrupt, idBody},
	{server.PathKeepAlive, idBody},
	{server.PathStartListening, idBody},
	{server.PathStopListening, idBody},
	{server.PathStop, idBody},
}

// accepts is docs/wire.md's endpoint table: the states each session endpoint
// accepts. Every other state answers its 10001–10005.
var accepts = map[string][]fsm.State{
	server.PathStart:          {fsm.New},
	server.PathICE:            {fsm.New, fsm.Connecting},
	server.PathTask:           {fsm.Connected},
	server.PathInterrupt:      {fsm.Connected},
	server.PathKeepAlive:      {fsm.Connected},
	server.PathStartListening: {fsm.Connected},
	server.PathStopListening:  {fsm.Connected},
	server.PathStop:           {fsm.New, fsm.Connecting, fsm.Connected},
}

// TestLifecycle walks a whole session over HTTP and the realtime socket,
// with an API key (a paid account) and with a create_token bearer token (a
// trial account), comparing every answer byte for byte.
func TestLifecycle(t *testing.T) {
	tests := []struct {
		name      string
		key       string
		useToken  bool
		account   string
		paid      bool
		limitSecs int64
	}{
		{name: "X-Api-Key", key: "acme-key", account: "acme", paid: true, limitSecs: 0},
		{name: "bearer token", key: "trial-key", useToken: true, account: "tryout", paid: false, limitSecs: 600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStack(t, serviceConfig)
			h := apiKey(tt.key)
			if tt.useToken {
				r := st.post(apiKey(tt.key), server.PathCreateToken, "{}")
				want(t, http.StatusOK, r.body, r)
				m := tokenPattern.FindStringSubmatch(r.body)
				require.NotNil(t, m, "create_token answers {\"error\":null,\"data\":{\"token\":...}}: %s", r.body)
				h = bearer(m[1])
			}
			before := time.Now().Unix()

			// new: the exact envelope, a dialable realtime URL.
			r := st.post(h, server.PathNew, `{"avatar_id":"Wayne_20240711","quality":"medium","version":"v2","video_encoding":"VP8","voice":{"rate":1.0,"emotion":"friendly"},"unknown_field":[1,2]}`)
			var d newData
			data(t, r, &d)
			require.Regexp(t, sessionIDPattern, d.SessionID, "128 bits, hex")
			endpoint := st.wsBase() + "?session_id=" + d.SessionID + "&session_token=" + url.QueryEscape(d.AccessToken)
			want(t, http.StatusOK, fmt.Sprintf(`{"code":100,"message":"success","data":{"session_id":%q,"access_token":%q,"realtime_endpoint":%q,"url":%q,"is_paid":%t,"session_duration_limit":%d}}`,
				d.SessionID, d.AccessToken, endpoint, endpoint, tt.paid, tt.limitSecs), r)
			if tt.useToken {
				want(t, http.StatusUnauthorized, bodyUnauthorized, st.post(h, server.PathNew, "{}"), "a token creates one session")
			}

			listed := func(status string) {
				t.Helper()
				r := st.get(h, server.PathList)
				var l listData
				data(t, r, &l)
				require.Len(t, l.Sessions, 1, r.body)
				created := l.Sessions[0].CreatedAt
				assert.True(t, created >= before && created <= time.Now().Unix(), "created_at %d is the creation's Unix second", created)
				want(t, http.StatusOK, fmt.Sprintf(`{"code":100,"message":"success","data":{"sessions":[{"session_id":%q,"status":%q,"created_at":%d}]}}`, d.SessionID, status, created), r)
			}
			listed("new")

			want(t, http.StatusOK, bodyNull, st.post(h, server.PathICE, iceBody(d.SessionID)), "ice in new")
			want(t, http.StatusOK, bodyNull, st.post(h, server.PathStart, `{"session_id":"`+d.SessionID+`","sdp":{"type":"answer","sdp":"v=0"}}`), "start")
			listed("connecting")
			want(t, http.StatusOK, bodyNull, st.post(h, server.PathICE, iceBody(d.SessionID)), "ice in connecting")

			// The socket opens with the endpoint as given: connecting → connected.
			ws := st.open(d.RealtimeEndpoint, nil)
			ws.expect(stateEvent("connected"))
			listed("connected")

			// A REST task is spoken on the socket.
			r = st.post(h, server.PathTask, `{"session_id":"`+d.SessionID+`","text":"Hello, world","task_type":"repeat","task_mode":"sync"}`)
			var task taskData
			data(t, r, &task)
			require.Regexp(t, taskIDPattern, task.TaskID)
			wantMS := realtime.DefaultTaskDuration("Hello, world").Milliseconds()
			want(t, http.StatusOK, fmt.Sprintf(`{"code":100,"message":"success","data":{"task_id":%q,"duration_ms":%d}}`, task.TaskID, wantMS), r)
			ws.expect(fmt.Sprintf(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":%q,"duration_ms":%d}`, task.TaskID, wantMS))

			// interrupt cuts it short, and says so.
			want(t, http.StatusOK, bodyNull, st.post(h, server.PathInterrupt, idBody(d.SessionID)))
			stop := ws.message()
			assert.Equal(t, realtime.TypeStopTalking, stop.Type)
			assert.Equal(t, task.TaskID, stop.TaskID)
			assert.True(t, stop.Interrupted)
			assert.Less(t, stop.DurationMS, wantMS)
			want(t, http.StatusOK, bodyNull, st.post(h, server.PathInterrupt, idBody(d.SessionID)), "interrupt when silent")

			// The same over the socket.
			ws.send(`{"type":"agent.speak","text":"Bonjour"}`)
			start := ws.message()
			assert.Equal(t, realtime.ServerMessage{Type: realtime.TypeStartTalking, EventType: realtime.TypeStartTalking, TaskID: start.TaskID, DurationMS: realtime.DefaultTaskDuration("Bonjour").Milliseconds()}, start)
			assert.Regexp(t, taskIDPattern, start.TaskID)
			assert.NotEqual(t, task.TaskID, start.TaskID)
			// The socket's reader handles messages in order, so the answer to
			// the interrupt also tells that the keep_alive was handled (it has
			// no answer of its own).
			ws.send(`{"type":"session.keep_alive"}`)
			ws.send(`{"type":"agent.interrupt"}`)
			stop = ws.message()
			assert.Equal(t, realtime.TypeStopTalking, stop.Type)
			assert.Equal(t, start.TaskID, stop.TaskID)
			assert.True(t, stop.Interrupted)

			for _, path := range []string{server.PathKeepAlive, server.PathStartListening, server.PathStopListening} {
				want(t, http.StatusOK, bodyNull, st.post(h, path, idBody(d.SessionID)), path)
			}
			want(t, http.StatusBadRequest, wrongState[fsm.Connected], st.post(h, server.PathStart, idBody(d.SessionID)), "start when connected")
			assert.Equal(t, 1, st.slots())

			// stop answers once the session is closed and its slot free; the
			// socket hears closing and closed, then the server closes it.
			want(t, http.StatusOK, bodyNull, st.post(h, server.PathStop, idBody(d.SessionID)))
			assert.Equal(t, 0, st.slots(), "the slot is free when stop answers")
			ws.expect(endEvent("closing", session.ReasonStop))
			ws.expect(endEvent("closed", session.ReasonStop))
			ws.wantClose(websocket.CloseNormalClosure, "session closed")

			want(t, http.StatusBadRequest, wrongState[fsm.Closed], st.post(h, server.PathStop, idBody(d.SessionID)), "a second stop")
			want(t, http.StatusOK, bodyEmptyList, st.get(h, server.PathList))
			info, err := st.svc.Manager.Get(context.Background(), tt.account, d.SessionID)
			require.NoError(t, err)
			assert.Equal(t, session.ReasonStop, info.Reason)
		})
	}
}

// TestWrongStateCodes calls every session endpoint in every state, over
// HTTP (and the realtime socket where it has a say): a state the endpoint
// does not accept answers 400 with the 10001–10005 of the state the session
// is in, byte for byte, and changes nothing; an accepted one succeeds.
func TestWrongStateCodes(t *testing.T) {
	var gate *gateLimiter
	st := newStack(t, serviceConfig, withGate(t, 100, &gate))

	// in returns a session of acme in state s (with its socket once
	// connected) and, for closing, the function that lets it close.
	in := func(st *stack, s fsm.State) (newData, *wsClient, func()) {
		t := st.t
		t.Helper()
		d := st.newSession(acme, "{}")
		if s == fsm.New {
			return d, nil, nil
		}
		st.startSession(acme, d.SessionID)
		if s == fsm.Connecting {
			return d, nil, nil
		}
		ws := st.open(d.RealtimeEndpoint, nil)
		ws.expect(stateEvent("connected"))
		switch s {
		case fsm.Closing:
			let := gate.hold(d.SessionID)
			done := make(chan reply, 1)
			go func() { done <- st.post(acme, server.PathStop, idBody(d.SessionID)) }()
			require.Equal(t, d.SessionID, <-gate.entered)
			ws.expect(endEvent("closing", session.ReasonStop))
			return d, ws, func() {
				let()
				want(t, http.StatusOK, bodyNull, <-done, "the held stop")
				ws.expect(endEvent("closed", session.ReasonStop))
				ws.wantClose(websocket.CloseNormalClosure, "session closed")
			}
		case fsm.Closed:
			want(t, http.StatusOK, bodyNull, st.post(acme, server.PathStop, idBody(d.SessionID)))
			ws.expect(endEvent("closing", session.ReasonStop))
			ws.expect(endEvent("closed", session.ReasonStop))
			ws.wantClose(websocket.CloseNormalClosure, "session closed")
		}
		return d, ws, nil
	}

	states := []fsm.State{fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed}
	for _, s := range states {
		t.Run(s.String(), func(t *testing.T) {
			st := st.on(t)
			d, ws, finish := in(st, s)
			require.Equal(t, s, st.state("acme", d.SessionID))
			slots := st.slots()
			_, listed := st.list(acme)[d.SessionID]
			assert.Equal(t, s.Open(), listed, "the list has the open sessions only")
			if s == fsm.Closing {
				assert.Equal(t, 1, slots, "a closing session holds its slot until closed")
			}
			for _, call := range sessionCalls {
				if accepted(call.path, s) {
					continue
				}
				r := st.post(acme, call.path, call.body(d.SessionID))
				want(t, http.StatusBadRequest, wrongState[s], r, "%s in %s", call.path, s)
			}
			// The socket: opening it is refused outside connecting and
			// connected; its commands outside connected get the error event.
			switch s {
			case fsm.New, fsm.Closing, fsm.Closed:
				st.refused(d.RealtimeEndpoint, nil, http.StatusBadRequest, wrongState[s], "socket in %s", s)
			}
			if s == fsm.Closing {
				for _, msg := range []string{`{"type":"agent.speak","text":"late"}`, `{"type":"agent.interrupt"}`, `{"type":"session.keep_alive"}`} {
					ws.send(msg)
					ws.expect(errorEvent(wrongState[fsm.Closing]))
				}
			}
			assert.Equal(t, s, st.state("acme", d.SessionID), "refusals change nothing")
			assert.Equal(t, slots, st.slots(), "refusals change nothing")
			if finish != nil {
				finish()
			}
			if s.Open() {
				want(t, http.StatusOK, bodyNull, st.post(acme, server.PathStop, idBody(d.SessionID)))
			}
		})
	}

	// The accepted pairs succeed, each on a fresh session in that state.
	for _, call := range sessionCalls {
		for _, s := range accepts[call.path] {
			t.Run("accepted "+call.path+" in "+s.String(), func(t *testing.T) {
				st := st.on(t)
				d, _, _ := in(st, s)
				r := st.post(acme, call.path, call.body(d.SessionID))
				assert.Equal(t, http.StatusOK, r.status, r.body)
				if call.path != server.PathTask {
					assert.Equal(t, bodyNull, r.body)
				}
				after := map[string]fsm.State{server.PathStart: fsm.Connecting, server.PathStop: fsm.Closed}
				wantState, moves := after[call.path]
				if !moves {
					wantState = s
				}
				assert.Equal(t, wantState, st.state("acme", d.SessionID))
				// Leave nothing open for the next pair.
				_ = st.post(acme, server.PathStop, idBody(d.SessionID))
			})
		}
	}
	assert.Equal(t, 0, st.slots())

	t.Run("racing stops", func(t *testing.T) {
		st := st.on(t)
		d, ws, _ := in(st, fsm.Connected)
		replies := make([]reply, 20)
		var wg sync.WaitGroup
		for i := range replies {
			wg.Go(func() { replies[i] = st.post(acme, server.PathStop, idBody(d.SessionID)) })
		}
		wg.Wait()
		ok := 0
		for _, r := range replies {
			switch r.body {
			case bodyNull:
				ok++
			case wrongState[fsm.Closing], wrongState[fsm.Closed]:
				assert.Equal(t, http.StatusBadRequest, r.status)
			default:
				t.Errorf("a racing stop answered %d %s", r.status, r.body)
			}
		}
		assert.Equal(t, 1, ok, "exactly one stop succeeds")
		assert.Equal(t, 0, st.slots())
		ws.expect(endEvent("closing", session.ReasonStop))
		ws.expect(endEvent("closed", session.ReasonStop))
		ws.wantClose(websocket.CloseNormalClosure, "session closed")
	})
}

func accepted(path string, s fsm.State) bool {
	for _, a := range accepts[path] {
		if a == s {
			return true
		}
	}
	return false
}

// TestTenancy: another account's session answers, byte for byte and for
// every endpoint, what an unknown id answers; a bearer token answers only
// for its own session. Nothing changes.
func TestTenancy(t *testing.T) {
	st := newStack(t, serviceConfig)
	newOne := st.newSession(acme, "{}")
	connecting := st.newSession(acme, "{}")
	st.startSession(acme, connecting.SessionID)
	connected, ws := st.connected(acme)
	closed := st.newSession(acme, "{}")
	want(t, http.StatusOK, bodyNull, st.post(acme, server.PathStop, idBody(closed.SessionID)))
	sessions := map[string]newData{"new": newOne, "connecting": connecting, "connected": connected, "closed": closed}
	before := map[string]fsm.State{}
	for _, d := range sessions {
		before[d.SessionID] = st.state("acme", d.SessionID)
	}

	t.Run("another account", func(t *testing.T) {
		st := st.on(t)
		for name, d := range sessions {
			for _, call := range sessionCalls {
				theirs := st.post(globex, call.path, call.body(d.SessionID))
				unknown := st.post(globex, call.path, call.body(unknownID()))
				want(t, http.StatusNotFound, bodyNotFound, unknown, call.path)
				assert.Equal(t, unknown.status, theirs.status, "%s on acme's %s session", call.path, name)
				assert.Equal(t, unknown.body, theirs.body, "%s on acme's %s session", call.path, name)
				assert.Equal(t, withoutDate(unknown.header), withoutDate(theirs.header), "%s on acme's %s session", call.path, name)
			}
		}
		want(t, http.StatusOK, bodyEmptyList, st.get(globex, server.PathList), "acme's sessions are not listed")
		// Their socket cannot be opened with the id of acme's session and a
		// token of globex's.
		mine := st.newSession(globex, "{}")
		st.startSession(globex, mine.SessionID)
		st.refused(st.wsBase()+"?session_id="+connecting.SessionID+"&session_token="+url.QueryEscape(mine.AccessToken), nil, http.StatusUnauthorized, bodyUnauthorized)
		want(t, http.StatusOK, bodyNull, st.post(globex, server.PathStop, idBody(mine.SessionID)))
	})

	t.Run("a bearer token on another session", func(t *testing.T) {
		st := st.on(t)
		token := st.mintToken("acme-key")
		own := st.newSession(bearer(token), "{}")
		for name, d := range sessions {
			for _, call := range sessionCalls {
				want(t, http.StatusUnauthorized, bodyUnauthorized, st.post(bearer(token), call.path, call.body(d.SessionID)), "%s on %s", call.path, name)
			}
		}
		for _, call := range sessionCalls {
			want(t, http.StatusUnauthorized, bodyUnauthorized, st.post(bearer(token), call.path, call.body(unknownID())), "%s on an unknown id", call.path)
		}
		// A token of another account, on acme's session.
		foreign := st.mintToken("globex-key")
		theirs := st.newSession(bearer(foreign), "{}")
		for _, call := range sessionCalls {
			want(t, http.StatusUnauthorized, bodyUnauthorized, st.post(bearer(foreign), call.path, call.body(own.SessionID)), "%s with globex's token", call.path)
		}
		// Each token still works on its own session.
		st.startSession(bearer(token), own.SessionID)
		st.startSession(bearer(foreign), theirs.SessionID)
		mine := st.list(bearer(token))
		assert.Equal(t, "connecting", mine[own.SessionID])
		assert.NotContains(t, mine, theirs.SessionID, "a token lists its own account's sessions")
	})

	for _, d := range sessions {
		assert.Equal(t, before[d.SessionID], st.state("acme", d.SessionID), "nothing changed")
	}
	ws.quiet()
	want(t, http.StatusOK, bodyNull, st.post(acme, server.PathKeepAlive, idBody(connected.SessionID)), "the connected session still works")
}

// limitsConfig has small limits: a capacity of 4, plans of 3, a trial with
// no minutes and plans that allow nothing.
const limitsConfig = `{
  "capacity": 4,
  "plans": {
    "three": {"max_concurrent": 3},
    "spent": {"trial": true, "monthly_minutes": 0, "max_concurrent": 0},
    "none":  {"max_concurrent": 0}
  },
  "accounts": [
    {"api_key": "a-key", "name": "a", "plan": "three"},
    {"api_key": "b-key", "name": "b", "plan": "three"},
    {"api_key": "c-key", "name": "c", "plan": "three"},
    {"api_key": "spent-key", "name": "spent", "plan": "spent"},
    {"api_key": "none-key",  "name": "none",  "plan": "none"}
  ],
  "avatars": [
    {"avatar_id": "Wayne_20240711", "public": true, "default": true},
    {"avatar_id": "retired", "public": true, "status": "INACTIVE"}
  ]
}`

// TestLimits checks each limit of streaming.new, their order, and that
// stopping frees the slot.
func TestLimits(t *testing.T) {
	t.Run("trial quota", func(t *testing.T) {
		st := newStack(t, limitsConfig)
		r := st.post(apiKey("spent-key"), server.PathNew, "{}")
		want(t, http.StatusTooManyRequests, bodyTrial, r)
		assert.Empty(t, r.header.Get("Retry-After"), "not worth retrying soon")
		want(t, http.StatusOK, bodyEmptyList, st.get(apiKey("spent-key"), server.PathList))
		assert.Equal(t, 0, st.slots())
	})

	t.Run("concurrency burst", func(t *testing.T) {
		st := newStack(t, limitsConfig)
		// 50 at once, half with the key and half with their own token:
		// exactly the plan's 3 succeed.
		tokens := make([]string, 50)
		for i := range tokens {
			if i%2 == 1 {
				tokens[i] = st.mintToken("a-key")
			}
		}
		replies := st.burst(50, func(i int) http.Header {
			if tokens[i] != "" {
				return bearer(tokens[i])
			}
			return apiKey("a-key")
		})
		ok := 0
		for _, r := range replies {
			if r.status == http.StatusOK {
				ok++
				continue
			}
			want(t, http.StatusTooManyRequests, bodyConcurrent, r)
			assert.Empty(t, r.header.Get("Retry-After"))
			retry, _ := sserrors.Retryable(typed(r))
			assert.False(t, retry, "10007 lasts until the account's sessions close")
		}
		assert.Equal(t, 3, ok)
		assert.Equal(t, 3, st.slots())
		listed := st.list(apiKey("a-key"))
		require.Len(t, listed, 3)

		// Stopping one frees its slot for the next new, and only one.
		var first string
		for id := range listed {
			first = id
			break
		}
		want(t, http.StatusOK, bodyNull, st.post(apiKey("a-key"), server.PathStop, idBody(first)))
		st.newSession(apiKey("a-key"), "{}")
		want(t, http.StatusTooManyRequests, bodyConcurrent, st.post(apiKey("a-key"), server.PathNew, "{}"))
		// A session in closing still holds its slot (docs/wire.md: until closed):
		// covered by the manager's own tests; here, the other accounts are
		// untouched by a's limit.
		st.newSession(apiKey("b-key"), "{}")
	})

	t.Run("a closing session holds its slot", func(t *testing.T) {
		// docs/wire.md: a slot is held from new until the session is closed.
		var gate *gateLimiter
		st := newStack(t, `{"capacity": 2, "plans": {"one": {"max_concurrent": 1}},
		  "accounts": [{"api_key": "a-key", "name": "a", "plan": "one"}, {"api_key": "b-key", "name": "b", "plan": "one"}]}`,
			withGate(t, 2, &gate))
		a, b := apiKey("a-key"), apiKey("b-key")
		first := st.newSession(a, "{}")
		st.newSession(b, "{}")
		let := gate.hold(first.SessionID)
		stopped := make(chan reply, 1)
		go func() { stopped <- st.post(a, server.PathStop, idBody(first.SessionID)) }()
		require.Equal(t, first.SessionID, <-gate.entered)
		require.Equal(t, fsm.Closing, st.state("a", first.SessionID))
		want(t, http.StatusTooManyRequests, bodyConcurrent, st.post(a, server.PathNew, "{}"), "closing counts against the plan")
		want(t, http.StatusBadRequest, wrongState[fsm.Closing], st.post(a, server.PathStop, idBody(first.SessionID)), "a racing stop")
		let()
		want(t, http.StatusOK, bodyNull, <-stopped)
		st.newSession(a, "{}")
		assert.Equal(t, 2, st.slots())
	})

	t.Run("a closing session holds its capacity", func(t *testing.T) {
		var gate *gateLimiter
		st := newStack(t, `{"capacity": 1, "plans": {"pro": {"max_concurrent": 5}},
		  "accounts": [{"api_key": "a-key", "name": "a", "plan": "pro"}]}`, withGate(t, 1, &gate))
		a := apiKey("a-key")
		first := st.newSession(a, "{}")
		let := gate.hold(first.SessionID)
		stopped := make(chan reply, 1)
		go func() { stopped <- st.post(a, server.PathStop, idBody(first.SessionID)) }()
		require.Equal(t, first.SessionID, <-gate.entered)
		want(t, http.StatusTooManyRequests, bodyFull, st.post(a, server.PathNew, "{}"), "closing counts against the capacity")
		let()
		want(t, http.StatusOK, bodyNull, <-stopped)
		st.newSession(a, "{}")
	})

	t.Run("limiter outage", func(t *testing.T) {
		var gate *gateLimiter
		st := newStack(t, serviceConfig, withGate(t, 100, &gate))
		d, ws := st.connected(acme)
		trial := st.newSession(tryout, "{}")
		gate.down.Store(true)

		r := st.post(acme, server.PathNew, "{}")
		want(t, http.StatusServiceUnavailable, bodyUnavailable, r)
		assert.Equal(t, "1", r.header.Get("Retry-After"))
		retry, after := sserrors.Retryable(typed(r))
		assert.True(t, retry)
		assert.Equal(t, time.Second, after)
		token := st.mintToken("acme-key")
		want(t, http.StatusServiceUnavailable, bodyUnavailable, st.post(bearer(token), server.PathNew, "{}"))

		// Running sessions are not touched.
		want(t, http.StatusOK, bodyNull, st.post(acme, server.PathKeepAlive, idBody(d.SessionID)))
		ws.send(`{"type":"agent.speak","text":"during the outage"}`)
		assert.Equal(t, realtime.TypeStartTalking, ws.message().Type)
		want(t, http.StatusOK, bodyNull, st.post(tryout, server.PathStart, idBody(trial.SessionID)), "a failure to count minutes does not fail start")
		want(t, http.StatusOK, bodyNull, st.post(tryout, server.PathStop, idBody(trial.SessionID)))
		assert.Equal(t, 1, st.slots())

		gate.down.Store(false)
		d2 := st.newSession(bearer(token), "{}")
		assert.NotEqual(t, d.SessionID, d2.SessionID, "the token was not spent by the failed new")
		assert.Equal(t, fsm.Connected, st.state("acme", d.SessionID))
	})

	t.Run("one token, many news", func(t *testing.T) {
		st := newStack(t, limitsConfig)
		token := st.mintToken("a-key")
		replies := st.burst(20, func(int) http.Header { return bearer(token) })
		ok := 0
		for _, r := range replies {
			if r.status == http.StatusOK {
				ok++
				continue
			}
			want(t, http.StatusUnauthorized, bodyUnauthorized, r)
		}
		assert.Equal(t, 1, ok, "a token creates one session")
		assert.Equal(t, 1, st.slots())
	})

	t.Run("capacity burst", func(t *testing.T) {
		st := newStack(t, limitsConfig)
		keys := []string{"a-key", "b-key", "c-key"}
		replies := st.burst(60, func(i int) http.Header { return apiKey(keys[i%3]) })
		created := map[string]int{}
		for i, r := range replies {
			if r.status == http.StatusOK {
				created[keys[i%3]]++
			}
		}
		total := 0
		for _, n := range created {
			assert.LessOrEqual(t, n, 3)
			total += n
		}
		require.Equal(t, 4, total, "exactly the capacity succeeds")
		for i, r := range replies {
			if r.status == http.StatusOK {
				continue
			}
			// Concurrency is checked before capacity: an account that ends
			// with its plan's 3 was refused with 10007 (no session closed
			// during the burst), any other with 10014.
			if created[keys[i%3]] == 3 {
				want(t, http.StatusTooManyRequests, bodyConcurrent, r)
			} else {
				want(t, http.StatusTooManyRequests, bodyFull, r)
				assert.Equal(t, "5", r.header.Get("Retry-After"), "10014 is transient")
				e := typed(r)
				assert.ErrorIs(t, e, sserrors.ErrSessionFull)
				retry, after := sserrors.Retryable(e)
				assert.True(t, retry)
				assert.Equal(t, 5*time.Second, after)
			}
		}
		assert.Equal(t, 4, st.slots())

		t.Run("order of checks on a full service", func(t *testing.T) {
			st := st.on(t)
			tests := []struct {
				name string
				key  string
				body string
				want string
				code int
			}{
				{"validation first", "spent-key", `{"activity_idle_timeout":10}`, bodyInvalid, 400},
				{"unknown avatar before quota", "spent-key", `{"avatar_id":"nope"}`, bodyAvatarNotFound, 404},
				{"inactive avatar before quota", "spent-key", `{"avatar_id":"retired"}`, bodyAvatarNotAllowed, 403},
				{"quota before concurrency", "spent-key", `{}`, bodyTrial, 429},
				{"concurrency before capacity", "none-key", `{}`, bodyConcurrent, 429},
				{"capacity", pickUnder3(created, keys), `{}`, bodyFull, 429},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					st := st.on(t)
					want(t, tt.code, tt.want, st.post(apiKey(tt.key), server.PathNew, tt.body))
				})
			}
			assert.Equal(t, 4, st.slots(), "refusals take nothing")
		})

		t.Run("a stop frees a slot", func(t *testing.T) {
			st := st.on(t)
			victimKey := pickAt3OrAny(created, keys)
			var victim string
			for id := range st.list(apiKey(victimKey)) {
				victim = id
				break
			}
			want(t, http.StatusOK, bodyNull, st.post(apiKey(victimKey), server.PathStop, idBody(victim)))
			created[victimKey]--
			assert.Equal(t, 3, st.slots())
			want(t, http.StatusTooManyRequests, bodyConcurrent, st.post(apiKey("none-key"), server.PathNew, "{}"), "a free slot does not lift a plan's limit")
			under := pickUnder3(created, keys)
			st.newSession(apiKey(under), "{}")
			created[under]++
			assert.Equal(t, 4, st.slots())
			want(t, http.StatusTooManyRequests, bodyFull, st.post(apiKey(pickUnder3(created, keys)), server.PathNew, "{}"), "full again")
		})
	})
}

// pickUnder3 returns a key whose account holds fewer than 3 sessions.
func pickUnder3(created map[string]int, keys []string) string {
	for _, k := range keys {
		if created[k] < 3 {
			return k
		}
	}
	return keys[0]
}

// pickAt3OrAny returns a key whose account holds 3 sessions if any, else one
// that holds at least one.
func pickAt3OrAny(created map[string]int, keys []string) string {
	for _, k := range keys {
		if created[k] == 3 {
			return k
		}
	}
	for _, k := range keys {
		if created[k] > 0 {
			return k
		}
	}
	return keys[0]
}

// TestAvatars: the avatar checks of streaming.new and avatar.list, per
// account.
func TestAvatars(t *testing.T) {
	st := newStack(t, serviceConfig)
	tests := []struct {
		name    string
		h       http.Header
		account string
		body    string
		status  int
		want    string // the refusal body, or the avatar of the session
	}{
		{"empty is the default", acme, "acme", `{}`, 200, "Wayne_20240711"},
		{"empty string is the default", acme, "acme", `{"avatar_id":""}`, 200, "Wayne_20240711"},
		{"public", globex, "globex", `{"avatar_id":"Wayne_20240711"}`, 200, "Wayne_20240711"},
		{"own private", acme, "acme", `{"avatar_id":"acme_private"}`, 200, "acme_private"},
		{"legacy avatar_name", acme, "acme", `{"avatar_name":"acme_private"}`, 200, "acme_private"},
		{"own private without status", globex, "globex", `{"avatar_id":"globex_private"}`, 200, "globex_private"},
		{"unknown", acme, "acme", `{"avatar_id":"nope"}`, 404, bodyAvatarNotFound},
		{"unknown legacy name", acme, "acme", `{"avatar_name":"nope"}`, 404, bodyAvatarNotFound},
		{"ids are case-sensitive", acme, "acme", `{"avatar_id":"wayne_20240711"}`, 404, bodyAvatarNotFound},
		{"another account's private", acme, "acme", `{"avatar_id":"globex_private"}`, 403, bodyAvatarNotAllowed},
		{"another account's private, the other way", globex, "globex", `{"avatar_id":"acme_private"}`, 403, bodyAvatarNotAllowed},
		{"public but INACTIVE", acme, "acme", `{"avatar_id":"retired"}`, 403, bodyAvatarNotAllowed},
		{"own but INACTIVE", acme, "acme", `{"avatar_id":"acme_retired"}`, 403, bodyAvatarNotAllowed},
		{"owned by no one and not public", acme, "acme", `{"avatar_id":"unowned"}`, 403, bodyAvatarNotAllowed},
		{"trial account, another's private", tryout, "tryout", `{"avatar_id":"acme_private"}`, 403, bodyAvatarNotAllowed},
	}
	created := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := st.on(t)
			r := st.post(tt.h, server.PathNew, tt.body)
			if tt.status != http.StatusOK {
				want(t, tt.status, tt.want, r)
				assert.Equal(t, created, st.slots(), "a refusal takes no slot")
				return
			}
			var d newData
			data(t, r, &d)
			created++
			info, err := st.svc.Manager.Get(context.Background(), tt.account, d.SessionID)
			require.NoError(t, err)
			assert.Equal(t, tt.want, info.AvatarID)
		})
	}

	t.Run("avatar.list", func(t *testing.T) {
		st := st.on(t)
		const (
			wayne   = `{"avatar_id":"Wayne_20240711","default_voice":null,"is_public":true,"status":"ACTIVE"}`
			retired = `{"avatar_id":"retired","default_voice":null,"is_public":true,"status":"INACTIVE"}`
		)
		lists := []struct {
			h    http.Header
			want string
		}{
			{acme, `[` + wayne + `,{"avatar_id":"acme_private","default_voice":"acme-voice","is_public":false,"status":"ACTIVE"},` + retired + `,{"avatar_id":"acme_retired","default_voice":null,"is_public":false,"status":"INACTIVE"}]`},
			{globex, `[` + wayne + `,{"avatar_id":"globex_private","default_voice":null,"is_public":false,"status":"ACTIVE"},` + retired + `]`},
			{tryout, `[` + wayne + `,` + retired + `]`},
		}
		for _, l := range lists {
			want(t, http.StatusOK, `{"code":100,"message":"success","data":`+l.want+`}`, st.get(l.h, server.PathAvatarList))
		}
	})

	t.Run("no usable default", func(t *testing.T) {
		inactive := newStack(t, `{"accounts":[{"api_key":"k","name":"n","plan":"pro"}],"avatars":[{"avatar_id":"d","public":true,"default":true,"status":"INACTIVE"}]}`)
		want(t, http.StatusForbidden, bodyAvatarNotAllowed, inactive.post(apiKey("k"), server.PathNew, "{}"), "an INACTIVE default")
		none := newStack(t, `{"accounts":[{"api_key":"k","name":"n","plan":"pro"}],"avatars":[{"avatar_id":"x","public":true}]}`)
		want(t, http.StatusNotFound, bodyAvatarNotFound, none.post(apiKey("k"), server.PathNew, "{}"), "no default at all")
		want(t, http.StatusOK, bodyEmptyList, none.get(apiKey("k"), server.PathList))
		assert.Equal(t, 0, inactive.slots()+none.slots())
	})
}

// TestReconnect: a second socket with the same token replaces the first; a
// dropped socket leaves the session connected, and it can be reopened.
func TestReconnect(t *testing.T) {
	st := newStack(t, serviceConfig)
	d, first := st.connected(acme)
	opened := <-st.opened
	assert.Equal(t, server.ShortHash(d.SessionID), opened.SessionHash)
	assert.Equal(t, "acme", opened.Account.Name)
	assert.Equal(t, "pro", opened.Account.Plan.Name, "the hook gets the whole account, resolved by name")
	assert.NotContains(t, opened.SessionHash, d.SessionID[:8], "hooks never see the raw id")

	second := st.open(d.RealtimeEndpoint, nil)
	second.expect(stateEvent("connected"))
	first.wantClose(websocket.CloseNormalClosure, "replaced by a new connection")
	assert.Equal(t, opened, <-st.closed, "the replaced socket is closed")
	<-st.opened
	assert.Equal(t, map[string]string{d.SessionID: "connected"}, st.list(acme), "the session stays connected")

	// Events reach the new socket.
	var task taskData
	data(t, st.post(acme, server.PathTask, taskBody(d.SessionID, "still here")), &task)
	second.expect(fmt.Sprintf(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":%q,"duration_ms":%d}`, task.TaskID, realtime.DefaultTaskDuration("still here").Milliseconds()))
	want(t, http.StatusOK, bodyNull, st.post(acme, server.PathInterrupt, idBody(d.SessionID)))
	assert.Equal(t, realtime.TypeStopTalking, second.message().Type)
	first.quiet()

	// A drop without a close frame.
	require.NoError(t, second.conn.NetConn().Close())
	<-st.closed
	assert.Equal(t, map[string]string{d.SessionID: "connected"}, st.list(acme), "a dropped socket leaves the session connected")
	want(t, http.StatusOK, bodyNull, st.post(acme, server.PathKeepAlive, idBody(d.SessionID)))

	third := st.open(d.RealtimeEndpoint, nil)
	third.expect(stateEvent("connected"))
	<-st.opened

	// A clean close by the client: the server answers it, and the session
	// stays connected.
	require.NoError(t, third.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second)))
	third.wantClose(websocket.CloseNormalClosure, realtime.ReasonClientClosed)
	<-st.closed
	assert.Equal(t, map[string]string{d.SessionID: "connected"}, st.list(acme))
	third = st.open(d.RealtimeEndpoint, nil)
	third.expect(stateEvent("connected"))
	third.send(`{"type":"agent.speak","text":"back"}`)
	back := third.message()
	assert.Equal(t, realtime.TypeStartTalking, back.Type)
	third.send(`{"type":"agent.interrupt"}`)
	stopBack := third.message()
	assert.Equal(t, realtime.ServerMessage{Type: realtime.TypeStopTalking, EventType: realtime.TypeStopTalking, TaskID: back.TaskID, DurationMS: stopBack.DurationMS, Interrupted: true}, stopBack)

	// Sockets opened at once: each upgrade succeeds, the last registered
	// replaces the others, and exactly one socket remains.
	const n = 8
	racers := make([]*wsClient, n)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			c, resp, err := st.dial(d.RealtimeEndpoint, nil)
			if assert.NoError(t, err) {
				assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
				racers[i] = c
			}
		})
	}
	wg.Wait()
	third.wantClose(websocket.CloseNormalClosure, "replaced by a new connection")
	survivor := waitAllButOne(t, racers)
	for _, c := range racers {
		if c == survivor {
			continue
		}
		if m, ok := c.next(); ok { // a socket replaced before its first state may get none
			assert.Equal(t, stateEvent("connected"), m)
		}
		c.wantClose(websocket.CloseNormalClosure, "replaced by a new connection")
	}
	survivor.expect(stateEvent("connected"))
	assert.Equal(t, map[string]string{d.SessionID: "connected"}, st.list(acme))

	// Stopping ends the speech on the current socket, then closes it. The
	// text is long enough to be still spoken when the stop comes.
	long := strings.Repeat("word ", 200)
	data(t, st.post(acme, server.PathTask, taskBody(d.SessionID, long)), &task)
	survivor.expect(fmt.Sprintf(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":%q,"duration_ms":%d}`, task.TaskID, realtime.DefaultTaskDuration(long).Milliseconds()))
	want(t, http.StatusOK, bodyNull, st.post(acme, server.PathStop, idBody(d.SessionID)))
	stop := survivor.message()
	assert.Equal(t, realtime.ServerMessage{Type: realtime.TypeStopTalking, EventType: realtime.TypeStopTalking, TaskID: task.TaskID, DurationMS: stop.DurationMS, Interrupted: true}, stop)
	survivor.expect(endEvent("closing", session.ReasonStop))
	survivor.expect(endEvent("closed", session.ReasonStop))
	survivor.wantClose(websocket.CloseNormalClosure, "session closed")
}

// TestGracefulShutdown: the service's shutdown closes every session
// (connected clients hear closing and closed), frees every slot and leaves
// the lists empty; afterwards new sessions and sockets are refused with
// 503/400558.
func TestGracefulShutdown(t *testing.T) {
	st := newStack(t, serviceConfig)
	var sockets []*wsClient
	var ids []string
	for _, h := range []http.Header{acme, acme, globex, tryout} {
		d, ws := st.connected(h)
		sockets = append(sockets, ws)
		ids = append(ids, d.SessionID)
	}
	fresh := st.newSession(acme, "{}")
	connecting := st.newSession(globex, "{}")
	st.startSession(globex, connecting.SessionID)
	require.Equal(t, 6, st.slots())

	require.NoError(t, st.shutdown())
	for _, ws := range sockets {
		ws.expect(endEvent("closing", session.ReasonShutdown))
		ws.expect(endEvent("closed", session.ReasonShutdown))
		ws.wantClose(websocket.CloseNormalClosure, "session closed")
	}
	assert.Equal(t, 0, st.slots(), "every slot is free")
	for _, h := range []http.Header{acme, globex, tryout} {
		want(t, http.StatusOK, bodyEmptyList, st.get(h, server.PathList))
	}
	for _, id := range []string{ids[0], ids[1], fresh.SessionID} {
		info, err := st.svc.Manager.Get(context.Background(), "acme", id)
		require.NoError(t, err)
		assert.Equal(t, fsm.Closed, info.State)
		assert.Equal(t, session.ReasonShutdown, info.Reason)
	}
	r := st.post(acme, server.PathNew, "{}")
	want(t, http.StatusServiceUnavailable, bodyUnavailable, r)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	st.refused(connecting.RealtimeEndpoint, nil, http.StatusServiceUnavailable, bodyUnavailable)
	assert.Equal(t, len(sockets), len(st.opened))
	assert.Equal(t, len(sockets), len(st.closed), "every socket opened was reported closed")
}

// TestHostileInput: oversized bodies and frames, malformed JSON, wrong
// types, wrong credentials, unknown messages and garbage queries get typed
// errors, never a panic, and change nothing.
func TestHostileInput(t *testing.T) {
	const config = `{
	  "plans": {"three": {"max_concurrent": 3}},
	  "accounts": [{"api_key": "k", "name": "n", "plan": "three"}],
	  "avatars": [{"avatar_id": "Wayne_20240711", "public": true, "default": true}]
	}`
	h := apiKey("k")
	posts := []string{server.PathCreateToken, server.PathNew, server.PathStart, server.PathICE, server.PathTask,
		server.PathInterrupt, server.PathKeepAlive, server.PathStartListening, server.PathStopListening, server.PathStop}

	t.Run("oversized bodies", func(t *testing.T) {
		st := newStack(t, config)
		d := st.newSession(h, "{}")
		pad := strings.Repeat("x", server.DefaultMaxBodyBytes)
		for _, path := range posts {
			body := `{"session_id":"` + d.SessionID + `","text":"hi","candidate":{},"avatar_id":"` + pad + `"}`
			want(t, http.StatusRequestEntityTooLarge, bodyInvalid, st.post(h, path, body), path)
		}
		assert.Equal(t, fsm.New, st.state("n", d.SessionID), "nothing changed")
		assert.Equal(t, map[string]string{d.SessionID: "new"}, st.list(h))
		// No slot was used: the plan's other two sessions can be created,
		// and no more.
		st.newSession(h, "{}")
		st.newSession(h, "{}")
		want(t, http.StatusTooManyRequests, bodyConcurrent, st.post(h, server.PathNew, "{}"))
	})

	t.Run("bodies", func(t *testing.T) {
		st := newStack(t, config)
		c, ws := st.connected(h)
		id := c.SessionID
		type bad struct {
			path   string
			body   string
			status int
			want   string
		}
		var cases []bad
		for _, path := range posts {
			for _, body := range []string{`{`, `not json`, `[]`, `null`, `"x"`, `42`, `{"session_id":"` + id + `",}`,
				`{"session_id":"` + id + `"} {}`, `{"session_id":"` + id + `"}]`, "\x00\xff", `{"session_id":"` + id + `","text":"a\u0000` + "\xff" + `}`} {
				cases = append(cases, bad{path, body, 400, bodyMissing})
			}
		}
		for _, path := range posts[2:] { // the calls that name a session
			for _, body := range []string{``, `{}`, `{"session_id":""}`, `{"session_id":null}`, `{"text":"hi"}`} {
				cases = append(cases, bad{path, body, 400, bodyMissing})
			}
			for _, body := range []string{`{"session_id":5}`, `{"session_id":true}`, `{"session_id":{}}`, `{"session_id":["` + id + `"]}`} {
				cases = append(cases, bad{path, body, 400, bodyInvalid})
			}
		}
		cases = append(cases,
			bad{server.PathTask, `{"session_id":"` + id + `"}`, 400, bodyMissing},
			bad{server.PathTask, `{"session_id":"` + id + `","text":""}`, 400, bodyMissing},
			bad{server.PathTask, `{"session_id":"` + id + `","text":"   "}`, 400, bodyMissing},
			bad{server.PathTask, `{"session_id":"` + id + `","text":5}`, 400, bodyInvalid},
			bad{server.PathTask, `{"session_id":"` + id + `","text":"hi","task_type":"sing"}`, 400, bodyInvalid},
			bad{server.PathTask, `{"session_id":"` + id + `","text":"hi","task_mode":"later"}`, 400, bodyInvalid},
			bad{server.PathTask, `{"session_id":"` + id + `","text":"hi","task_mode":1}`, 400, bodyInvalid},
			bad{server.PathICE, `{"session_id":"` + id + `"}`, 400, bodyMissing},
			bad{server.PathICE, `{"session_id":"` + id + `","candidate":null}`, 400, bodyMissing},
		)
		for _, body := range []string{
			`{"activity_idle_timeout":29}`, `{"activity_idle_timeout":3601}`, `{"activity_idle_timeout":-1}`,
			`{"activity_idle_timeout":30.5}`, `{"activity_idle_timeout":"60"}`, `{"activity_idle_timeout":1e99}`,
			`{"quality":"ultra"}`, `{"quality":5}`, `{"video_encoding":"AV1"}`, `{"voice":{"rate":0.4}}`,
			`{"voice":{"rate":1.6}}`, `{"voice":{"rate":"fast"}}`, `{"voice":{"emotion":"angry"}}`, `{"voice":"v"}`,
			`{"disable_idle_timeout":"yes"}`, `{"avatar_id":7}`, `{"avatar_id":["Wayne_20240711"]}`,
		} {
			cases = append(cases, bad{server.PathNew, body, 400, bodyInvalid})
		}
		for _, c := range cases {
			r := st.post(h, c.path, c.body)
			want(t, c.status, c.want, r, "%s %q", c.path, c.body)
		}
		assert.Equal(t, fsm.Connected, st.state("n", id), "nothing changed")
		assert.Equal(t, map[string]string{id: "connected"}, st.list(h))
		assert.Equal(t, 1, st.slots())
		ws.quiet()

		// Deep nesting and odd ids.
		deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
		want(t, http.StatusBadRequest, bodyMissing, st.post(h, server.PathStop, `{"session_id":`+deep+`}`), "nesting beyond the decoder's limit")
		for _, odd := range []string{strings.Repeat("a", 100000), "../" + id, id + `\u0000`, `\u202e` + id, "\u202e" + id, strings.ToUpper(id), " " + id} {
			want(t, http.StatusNotFound, bodyNotFound, st.post(h, server.PathStop, `{"session_id":"`+odd+`"}`), "%.40q", odd)
		}
		assert.Equal(t, fsm.Connected, st.state("n", id), "nothing changed")

		// Boundaries are accepted, and unknown fields ignored.
		for _, body := range []string{`{"activity_idle_timeout":30}`, `{"activity_idle_timeout":3600}`,
			`{"quality":"HIGH","video_encoding":"h264","voice":{"rate":0.5,"emotion":"Soothing"}}`, `{"voice":{"rate":1.5}}`} {
			d := st.newSession(h, body)
			want(t, http.StatusOK, bodyNull, st.post(h, server.PathStop, idBody(d.SessionID)), body)
		}
		// Unknown fields are ignored.
		d := st.newSession(h, `{"avatar_id":"Wayne_20240711","foo":1,"bar":{"x":[1,2,{"y":null}]}}`)
		want(t, http.StatusOK, bodyNull, st.post(h, server.PathStop, `{"session_id":"`+d.SessionID+`","why":"because"}`))
	})

	t.Run("credentials", func(t *testing.T) {
		st := newStack(t, config)
		d := st.newSession(h, "{}")
		creds := map[string]http.Header{
			"none":                   nil,
			"unknown key":            apiKey("nope"),
			"key of another case":    apiKey("K"),
			"empty bearer":           {"Authorization": {"Bearer "}},
			"bearer alone":           {"Authorization": {"Bearer"}},
			"garbage bearer":         bearer("sst_garbage"),
			"access token as bearer": bearer(d.AccessToken),
			"basic":                  {"Authorization": {"Basic az0="}},
			"key as bearer":          bearer("k"),
		}
		for name, cred := range creds {
			for _, path := range posts {
				want(t, http.StatusUnauthorized, bodyUnauthorized, st.post(cred, path, idBody(d.SessionID)), "%s %s", name, path)
			}
			for _, path := range []string{server.PathList, server.PathAvatarList} {
				want(t, http.StatusUnauthorized, bodyUnauthorized, st.get(cred, path), "%s %s", name, path)
			}
		}
		want(t, http.StatusUnauthorized, bodyUnauthorized, st.post(bearer(st.mintToken("k")), server.PathCreateToken, "{}"), "a token mints no token")
		assert.Equal(t, fsm.New, st.state("n", d.SessionID))
		assert.Equal(t, 1, st.slots())
	})

	t.Run("paths and methods", func(t *testing.T) {
		st := newStack(t, config)
		for _, path := range []string{"/", "/v1/", "/v1/streaming.nope", "/v1/streaming.new/", "/v2/streaming.new", "/v1/streaming.new/../streaming.stop"} {
			want(t, http.StatusNotFound, bodyNoResource, st.post(h, path, "{}"), path)
		}
		r := st.get(h, server.PathNew)
		want(t, http.StatusMethodNotAllowed, bodyNoResource, r)
		assert.Equal(t, "POST", r.header.Get("Allow"))
		r = st.post(h, server.PathList, "{}")
		want(t, http.StatusMethodNotAllowed, bodyNoResource, r)
		assert.Equal(t, "GET", r.header.Get("Allow"))
		assert.Equal(t, 0, st.slots())
	})

	t.Run("garbage query strings", func(t *testing.T) {
		st := newStack(t, config)
		conn := st.newSession(h, "{}")
		st.startSession(h, conn.SessionID)
		token := url.QueryEscape(conn.AccessToken)
		for _, q := range []string{"", "%zz", "a=%zz&b", "session_id=&session_token=", "session_id=%zz&session_token=%zz",
			"session_id=" + strings.Repeat("a", 8000), "session_id=" + conn.SessionID,
			"session_token=" + token, "session_id=" + conn.SessionID + "&session_token=" + token + "%00",
			"session_id=" + conn.SessionID + "x&session_token=" + token,
			"session_id=" + strings.ToUpper(conn.SessionID) + "&session_token=" + token,
			"session_id[]=" + conn.SessionID + "&session_token=" + token,
			"session_id=" + unknownID() + "&session_token=" + token,
			"session_id=%00&session_token=%00", "session_id=" + conn.SessionID + "&session_token=" + token[:len(token)-2],
		} {
			st.refused(st.wsBase()+"?"+q, nil, http.StatusUnauthorized, bodyUnauthorized, "query %.80q", q)
		}
		// A query on the REST endpoints is ignored.
		var l listData
		data(t, st.get(h, server.PathList+"?%zz&&==&session_id=%00"), &l)
		require.Len(t, l.Sessions, 1)
		want(t, http.StatusBadRequest, bodyMissing, st.post(h, server.PathStop+"?session_id="+conn.SessionID, "{}"), "the id is read from the body only")
		assert.Equal(t, fsm.Connecting, st.state("n", conn.SessionID), "nothing changed")
		// The right query still opens it.
		ws := st.open(conn.RealtimeEndpoint, nil)
		ws.expect(stateEvent("connected"))
	})

	t.Run("random bytes", func(t *testing.T) {
		st := newStack(t, config)
		d := st.newSession(h, "{}")
		rng := rand.New(rand.NewPCG(1, 2))
		sent := 0
		for _, path := range posts {
			for range 40 {
				b := make([]byte, 1+rng.IntN(300))
				for i := range b {
					b[i] = byte(rng.UintN(256))
				}
				if t := bytes.TrimSpace(b); len(t) == 0 || t[0] == '{' {
					continue // the empty body is {}; objects are covered above
				}
				sent++
				want(t, http.StatusBadRequest, bodyMissing, st.post(h, path, string(b)), "%s %q", path, b)
			}
		}
		assert.Greater(t, sent, 300)
		assert.Equal(t, map[string]string{d.SessionID: "new"}, st.list(h), "nothing changed")
		assert.Equal(t, 1, st.slots())
	})

	t.Run("origin", func(t *testing.T) {
		st := newStack(t, config)
		d := st.newSession(h, "{}")
		st.startSession(h, d.SessionID)
		for _, origin := range []string{"https://evil.example", "null", "http://" + st.host() + ".evil.example", "::"} {
			st.refused(d.RealtimeEndpoint, http.Header{"Origin": {origin}}, http.StatusForbidden, `{"code":400562,"message":"forbidden"}`, origin)
		}
		assert.Equal(t, fsm.Connecting, st.state("n", d.SessionID), "nothing changed")
		ws := st.open(d.RealtimeEndpoint, http.Header{"Origin": {st.http.URL}})
		ws.expect(stateEvent("connected"))
	})

	t.Run("socket messages and frames", func(t *testing.T) {
		st := newStack(t, config)
		d, ws := st.connected(h)
		for _, msg := range []string{`{"type":"agent.dance"}`, `not json`, `{`, `[]`, `null`, `""`, `{"type":5}`, `{"type":null}`,
			`{}`, `{"type":"agent.speak"}`, `{"type":"agent.speak","text":""}`, `{"type":"agent.speak","text":7}`,
			`{"type":"AGENT.SPEAK","text":"hi"}`, `{"type":"session.keep_alive"} trailing`, ``} {
			ws.send(msg)
			ws.expect(eventInvalid)
		}
		require.NoError(t, ws.conn.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"session.keep_alive"}`)))
		ws.expect(eventInvalid)
		// The socket stays open and works.
		ws.send(`{"type":"agent.speak","text":"still open"}`)
		assert.Equal(t, realtime.TypeStartTalking, ws.message().Type)
		ws.send(`{"type":"agent.interrupt"}`)
		assert.Equal(t, realtime.TypeStopTalking, ws.message().Type)
		assert.Equal(t, fsm.Connected, st.state("n", d.SessionID))

		// An oversized frame closes the socket with 1009; the session
		// survives it and the socket can be reopened.
		ws.send(`{"type":"agent.speak","text":"` + strings.Repeat("a", 64<<10) + `"}`)
		ce := ws.closeError()
		assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
		assert.Equal(t, fsm.Connected, st.state("n", d.SessionID))
		assert.Equal(t, 1, st.slots())
		again := st.open(d.RealtimeEndpoint, nil)
		again.expect(stateEvent("connected"))
		again.send(`{"type":"session.keep_alive"}`)
		again.send(`{"type":"agent.speak","text":"back"}`)
		assert.Equal(t, realtime.TypeStartTalking, again.message().Type)

		// A text frame that is not UTF-8 closes the socket with 1007, and a
		// client over the message rate is closed with 1008: both say why,
		// and the session is untouched.
		bad := st.open(d.RealtimeEndpoint, nil)
		bad.expect(stateEvent("connected"))
		bad.send("\xff\xc0")
		ce = bad.closeError()
		assert.Equal(t, websocket.CloseInvalidFramePayloadData, ce.Code)
		assert.Equal(t, realtime.ReasonInvalidUTF8, ce.Text)
		flood := st.open(d.RealtimeEndpoint, nil)
		flood.expect(stateEvent("connected"))
		for range 100 {
			if flood.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"session.keep_alive"}`)) != nil {
				break // closed under us
			}
		}
		ce = flood.closeError()
		assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
		assert.Equal(t, realtime.ReasonTooManyMessages, ce.Text)
		assert.Equal(t, fsm.Connected, st.state("n", d.SessionID))
		assert.Equal(t, 1, st.slots())
	})
}

// timersConfig has short timers: a join timeout of 30 s, a retention of
// 10 s, a trial plan whose sessions last 60 s and one with a single minute a
// month.
const timersConfig = `{
  "capacity": 10,
  "join_timeout_seconds": 30,
  "closed_retention_seconds": 10,
  "plans": {
    "pro":     {"max_concurrent": 5},
    "short":   {"trial": true, "max_concurrent": 3, "monthly_minutes": 300, "session_duration_limit": 60},
    "oneminute": {"trial": true, "max_concurrent": 3, "monthly_minutes": 1, "session_duration_limit": 600}
  },
  "accounts": [
    {"api_key": "pro-key",   "name": "pro",   "plan": "pro"},
    {"api_key": "short-key", "name": "short", "plan": "short"},
    {"api_key": "one-key",   "name": "one",   "plan": "oneminute"}
  ],
  "avatars": [{"avatar_id": "Wayne_20240711", "public": true, "default": true}]
}`

// inBubble runs f with the whole stack (manager loops, limiter, HTTP server,
// sockets) inside a synctest bubble on an in-memory network, so that the
// timers run on fake time: each is checked one nanosecond before its
// deadline and at it.
func inBubble(t *testing.T, f func(t *testing.T, st *stack)) {
	inBubbleFrom(t, time.Time{}, f)
}

// inBubbleFrom is inBubble with the stack started at the fake time start
// (when it is later than the bubble's start, midnight UTC 2000-01-01).
func inBubbleFrom(t *testing.T, start time.Time, f func(t *testing.T, st *stack)) {
	synctest.Test(t, func(t *testing.T) {
		if d := time.Until(start); d > 0 {
			time.Sleep(d) // nothing runs yet: free
		}
		f(t, newBubbleStack(t, timersConfig))
	})
}

func TestTimers(t *testing.T) {
	pro, short, one := apiKey("pro-key"), apiKey("short-key"), apiKey("one-key")

	t.Run("join timeout", func(t *testing.T) {
		inBubble(t, func(t *testing.T, st *stack) {
			never := st.newSession(pro, "{}")
			created := st.info("pro", never.SessionID).CreatedAt
			time.Sleep(10 * time.Second)
			unjoined := st.newSession(pro, "{}")
			st.startSession(pro, unjoined.SessionID)
			joined, ws := st.connected(pro)

			sleepUntil(t, created.Add(30*time.Second-time.Nanosecond))
			assert.Equal(t, map[string]string{never.SessionID: "new", unjoined.SessionID: "connecting", joined.SessionID: "connected"}, st.list(pro))
			assert.Equal(t, 3, st.slots())

			sleepUntil(t, created.Add(30*time.Second))
			st.wantClosedBy("pro", never.SessionID, session.ReasonJoin, nil)
			assert.Equal(t, 2, st.slots(), "the slot is freed in the same step")
			want(t, http.StatusBadRequest, wrongState[fsm.Closed], st.post(pro, server.PathStart, idBody(never.SessionID)))

			// Counted from creation, not from start.
			sleepUntil(t, created.Add(40*time.Second-time.Nanosecond))
			assert.Equal(t, fsm.Connecting, st.state("pro", unjoined.SessionID))
			sleepUntil(t, created.Add(40*time.Second))
			st.wantClosedBy("pro", unjoined.SessionID, session.ReasonJoin, nil)
			assert.Equal(t, 1, st.slots())
			st.refused(unjoined.RealtimeEndpoint, nil, http.StatusBadRequest, wrongState[fsm.Closed])

			assert.Equal(t, map[string]string{joined.SessionID: "connected"}, st.list(pro), "a joined session has no join timeout")
			ws.quiet()
		})
	})

	t.Run("idle timeout reset by activity", func(t *testing.T) {
		inBubble(t, func(t *testing.T, st *stack) {
			d := st.newSession(pro, `{"activity_idle_timeout":30}`)
			st.startSession(pro, d.SessionID)
			ws := st.open(d.RealtimeEndpoint, nil)
			ws.expect(stateEvent("connected"))
			joined := st.info("pro", d.SessionID).LastActivity
			never := st.newSession(pro, `{"activity_idle_timeout":30,"disable_idle_timeout":true}`)
			st.startSession(pro, never.SessionID)
			wsNever := st.open(never.RealtimeEndpoint, nil)
			wsNever.expect(stateEvent("connected"))

			// keep_alive over REST at +20 s, over the socket at +49 s, a task
			// at +78 s: each pushes the deadline to 30 s later.
			sleepUntil(t, joined.Add(20*time.Second))
			want(t, http.StatusOK, bodyNull, st.post(pro, server.PathKeepAlive, idBody(d.SessionID)))
			sleepUntil(t, joined.Add(49*time.Second))
			assert.Equal(t, fsm.Connected, st.state("pro", d.SessionID), "past the first deadline")
			ws.send(`{"type":"session.keep_alive"}`)
			sleepUntil(t, joined.Add(78*time.Second))
			assert.Equal(t, fsm.Connected, st.state("pro", d.SessionID), "past the second deadline")
			var task taskData
			data(t, st.post(pro, server.PathTask, taskBody(d.SessionID, "Hi")), &task)
			ws.expect(fmt.Sprintf(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":%q,"duration_ms":500}`, task.TaskID))
			sleepUntil(t, joined.Add(78*time.Second+500*time.Millisecond))
			ws.expect(fmt.Sprintf(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":%q,"duration_ms":500,"interrupted":false}`, task.TaskID))

			// Any message counts, even one refused; pings and pongs do not
			// (the client answers the server's pings all along).
			sleepUntil(t, joined.Add(100*time.Second))
			ws.send(`{"type":"nonsense"}`)
			ws.expect(eventInvalid)
			sleepUntil(t, joined.Add(130*time.Second-time.Nanosecond))
			assert.Equal(t, fsm.Connected, st.state("pro", d.SessionID))
			ws.quiet()
			assert.Equal(t, 2, st.slots())
			sleepUntil(t, joined.Add(130*time.Second))
			st.wantClosedBy("pro", d.SessionID, session.ReasonIdle, ws)
			assert.Equal(t, 1, st.slots(), "the slot is freed in the same step")

			// disable_idle_timeout: still connected an hour later, its lease
			// renewed all along.
			sleepUntil(t, joined.Add(time.Hour+time.Minute))
			assert.Equal(t, map[string]string{never.SessionID: "connected"}, st.list(pro))
			assert.Equal(t, 1, st.slots())
			wsNever.quiet()
		})
	})

	t.Run("a dropped socket leaves the idle timer running", func(t *testing.T) {
		inBubble(t, func(t *testing.T, st *stack) {
			d := st.newSession(pro, `{"activity_idle_timeout":30}`)
			st.startSession(pro, d.SessionID)
			ws := st.open(d.RealtimeEndpoint, nil)
			ws.expect(stateEvent("connected"))
			joined := st.info("pro", d.SessionID).LastActivity

			sleepUntil(t, joined.Add(10*time.Second))
			require.NoError(t, ws.conn.NetConn().Close()) // no close frame
			synctest.Wait()
			require.Len(t, st.closed, 1, "the server saw the drop")
			assert.Equal(t, fsm.Connected, st.state("pro", d.SessionID))

			// Reopening counts as activity: the deadline moves to +50 s.
			sleepUntil(t, joined.Add(20*time.Second))
			again := st.open(d.RealtimeEndpoint, nil)
			again.expect(stateEvent("connected"))
			sleepUntil(t, joined.Add(50*time.Second-time.Nanosecond))
			assert.Equal(t, fsm.Connected, st.state("pro", d.SessionID))
			require.NoError(t, again.conn.NetConn().Close())
			sleepUntil(t, joined.Add(50*time.Second))
			st.wantClosedBy("pro", d.SessionID, session.ReasonIdle, nil)
			assert.Equal(t, 0, st.slots())
		})
	})

	t.Run("duration limit", func(t *testing.T) {
		inBubble(t, func(t *testing.T, st *stack) {
			d := st.newSession(short, "{}")
			assert.False(t, d.IsPaid)
			assert.Equal(t, int64(60), d.SessionDurationLimit)
			time.Sleep(5 * time.Second)
			st.startSession(short, d.SessionID)
			started := st.info("short", d.SessionID).StartedAt
			ws := st.open(d.RealtimeEndpoint, nil)
			ws.expect(stateEvent("connected"))

			for at := 20 * time.Second; at < 60*time.Second; at += 20 * time.Second {
				sleepUntil(t, started.Add(at))
				want(t, http.StatusOK, bodyNull, st.post(short, server.PathKeepAlive, idBody(d.SessionID)), "activity does not extend the limit")
			}
			sleepUntil(t, started.Add(60*time.Second-time.Nanosecond))
			assert.Equal(t, fsm.Connected, st.state("short", d.SessionID))
			ws.quiet()
			sleepUntil(t, started.Add(60*time.Second))
			st.wantClosedBy("short", d.SessionID, session.ReasonDuration, ws)
			assert.Equal(t, 0, st.slots())
		})
	})

	t.Run("retention", func(t *testing.T) {
		inBubble(t, func(t *testing.T, st *stack) {
			token := st.mintToken("pro-key")
			d := st.newSession(bearer(token), "{}")
			want(t, http.StatusOK, bodyNull, st.post(bearer(token), server.PathStop, idBody(d.SessionID)))
			closedAt := st.info("pro", d.SessionID).ClosedAt
			assert.Equal(t, 0, st.slots(), "the slot is freed at close, not at the end of retention")

			sleepUntil(t, closedAt.Add(10*time.Second-time.Nanosecond))
			want(t, http.StatusBadRequest, wrongState[fsm.Closed], st.post(pro, server.PathStart, idBody(d.SessionID)))
			want(t, http.StatusBadRequest, wrongState[fsm.Closed], st.post(bearer(token), server.PathStop, idBody(d.SessionID)))
			sleepUntil(t, closedAt.Add(10*time.Second))
			want(t, http.StatusNotFound, bodyNotFound, st.post(pro, server.PathStart, idBody(d.SessionID)), "forgotten")
			want(t, http.StatusNotFound, bodyNotFound, st.post(pro, server.PathStop, idBody(d.SessionID)), "forgotten")
			want(t, http.StatusUnauthorized, bodyUnauthorized, st.post(bearer(token), server.PathStop, idBody(d.SessionID)), "the token ends with its session")
			want(t, http.StatusUnauthorized, bodyUnauthorized, st.get(bearer(token), server.PathList))
		})
	})

	t.Run("trial minutes", func(t *testing.T) {
		// Five minutes before the end of January 2000, so that the month
		// turns during the test.
		inBubbleFrom(t, time.Date(2000, 1, 31, 23, 55, 0, 0, time.UTC), func(t *testing.T, st *stack) {
			a := st.newSession(one, "{}")
			time.Sleep(10 * time.Second) // not counted: minutes run from start
			st.startSession(one, a.SessionID)
			started := st.info("one", a.SessionID).StartedAt
			ws := st.open(a.RealtimeEndpoint, nil)
			ws.expect(stateEvent("connected"))

			sleepUntil(t, started.Add(time.Minute-time.Nanosecond))
			b := st.newSession(one, "{}")
			want(t, http.StatusOK, bodyNull, st.post(one, server.PathStop, idBody(b.SessionID)), "never started: counts nothing")
			sleepUntil(t, started.Add(time.Minute))
			r := st.post(one, server.PathNew, "{}")
			want(t, http.StatusTooManyRequests, bodyTrial, r, "a running session's minutes count")
			assert.Empty(t, r.header.Get("Retry-After"))
			want(t, http.StatusOK, bodyNull, st.post(one, server.PathStop, idBody(a.SessionID)))
			want(t, http.StatusTooManyRequests, bodyTrial, st.post(one, server.PathNew, "{}"), "used minutes stay used")
			st.newSession(short, "{}") // another trial account is not affected

			// The minutes are counted per calendar month (UTC).
			nextMonth := time.Date(2000, 2, 1, 0, 0, 0, 0, time.UTC)
			sleepUntil(t, nextMonth.Add(-time.Nanosecond))
			want(t, http.StatusTooManyRequests, bodyTrial, st.post(one, server.PathNew, "{}"))
			sleepUntil(t, nextMonth)
			st.newSession(one, "{}")
		})
	})

	t.Run("bearer token idle expiry", func(t *testing.T) {
		inBubble(t, func(t *testing.T, st *stack) {
			token := st.mintToken("pro-key")
			minted := time.Now()
			sleepUntil(t, minted.Add(time.Hour-time.Nanosecond))
			want(t, http.StatusOK, bodyEmptyList, st.get(bearer(token), server.PathList), "a use restarts the hour")
			used := time.Now()
			sleepUntil(t, used.Add(time.Hour-time.Nanosecond))
			d := st.newSession(bearer(token), "{}")
			created := time.Now()
			// Bound to its session, the token lives while the session is
			// addressable: join timeout (30 s) then retention (10 s).
			sleepUntil(t, created.Add(40*time.Second-time.Nanosecond))
			want(t, http.StatusBadRequest, wrongState[fsm.Closed], st.post(bearer(token), server.PathStart, idBody(d.SessionID)))
			sleepUntil(t, created.Add(40*time.Second))
			want(t, http.StatusUnauthorized, bodyUnauthorized, st.get(bearer(token), server.PathList))

			unused := st.mintToken("pro-key")
			minted = time.Now()
			sleepUntil(t, minted.Add(time.Hour))
			want(t, http.StatusUnauthorized, bodyUnauthorized, st.post(bearer(unused), server.PathNew, "{}"), "an hour unused")
			want(t, http.StatusOK, bodyEmptyList, st.get(pro, server.PathList), "the key still works")
			assert.Equal(t, 0, st.slots())
		})
	})

	t.Run("limiter outages", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var gate *gateLimiter
			st := newBubbleStack(t, timersConfig, withGate(t, 10, &gate))
			d, ws := st.connected(pro)
			keepAlive := func() {
				t.Helper()
				want(t, http.StatusOK, bodyNull, st.post(pro, server.PathKeepAlive, idBody(d.SessionID)))
			}

			// Shorter than a lease (one minute): nothing happens.
			gate.down.Store(true)
			time.Sleep(30 * time.Second)
			synctest.Wait()
			want(t, http.StatusServiceUnavailable, bodyUnavailable, st.post(pro, server.PathNew, "{}"))
			gate.down.Store(false)
			for range 4 {
				keepAlive()
				time.Sleep(time.Minute)
				synctest.Wait()
				require.Equal(t, fsm.Connected, st.state("pro", d.SessionID), "leases are renewed again")
			}
			ws.quiet()
			assert.Equal(t, 1, st.slots())

			// Longer than a lease: the slot is lost, so the session closes
			// once the limiter answers again.
			keepAlive()
			gate.down.Store(true)
			time.Sleep(90 * time.Second)
			synctest.Wait()
			assert.Equal(t, fsm.Connected, st.state("pro", d.SessionID), "an unreachable limiter closes nothing")
			gate.down.Store(false)
			time.Sleep(20 * time.Second) // one renewal round
			synctest.Wait()
			st.wantClosedBy("pro", d.SessionID, session.ReasonLeaseLost, ws)
			assert.Equal(t, 0, st.slots())
			st.newSession(pro, "{}")
		})
	})

	t.Run("speech", func(t *testing.T) {
		inBubble(t, func(t *testing.T, st *stack) {
			d, ws := st.connected(pro)
			startMsg := func(id string, ms int) string {
				return fmt.Sprintf(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":%q,"duration_ms":%d}`, id, ms)
			}
			stopMsg := func(id string, ms int, interrupted bool) string {
				return fmt.Sprintf(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":%q,"duration_ms":%d,"interrupted":%t}`, id, ms, interrupted)
			}

			// Spoken to the end: 11 letters at 70 ms.
			ws.send(`{"type":"agent.speak","text":"Hello, world"}`)
			synctest.Wait()
			spoken := time.Now()
			first := ws.message()
			require.Regexp(t, taskIDPattern, first.TaskID)
			assert.Equal(t, realtime.ServerMessage{Type: realtime.TypeStartTalking, EventType: realtime.TypeStartTalking, TaskID: first.TaskID, DurationMS: 770}, first)
			sleepUntil(t, spoken.Add(770*time.Millisecond-time.Nanosecond))
			ws.quiet()
			sleepUntil(t, spoken.Add(770*time.Millisecond))
			ws.expect(stopMsg(first.TaskID, 770, false))

			// A REST task interrupted after 300 ms.
			var task taskData
			data(t, st.post(pro, server.PathTask, taskBody(d.SessionID, "Hello, world")), &task)
			ws.expect(startMsg(task.TaskID, 770))
			time.Sleep(300 * time.Millisecond)
			want(t, http.StatusOK, bodyNull, st.post(pro, server.PathInterrupt, idBody(d.SessionID)))
			ws.expect(stopMsg(task.TaskID, 300, true))

			// A newer task cuts the current one short.
			ws.send(`{"type":"agent.speak","text":"one two three"}`)
			one := ws.message()
			assert.Equal(t, int64(770), one.DurationMS)
			time.Sleep(100 * time.Millisecond)
			ws.send(`{"type":"agent.speak","text":"four"}`)
			ws.expect(stopMsg(one.TaskID, 100, true))
			four := ws.message()
			assert.Equal(t, realtime.ServerMessage{Type: realtime.TypeStartTalking, EventType: realtime.TypeStartTalking, TaskID: four.TaskID, DurationMS: 500}, four)

			// Closing the session ends the speech first.
			time.Sleep(200 * time.Millisecond)
			want(t, http.StatusOK, bodyNull, st.post(pro, server.PathStop, idBody(d.SessionID)))
			ws.expect(stopMsg(four.TaskID, 200, true))
			st.wantClosedBy("pro", d.SessionID, session.ReasonStop, ws)
		})
	})
}
