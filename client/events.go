package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// Socket message types (the same as package server's).
const (
	typeStateUpdated = "session.state_updated"
	typeStartTalking = "avatar_start_talking"
	typeStopTalking  = "avatar_stop_talking"
	typeError        = "error"
)

// readIdle drops a socket that has been silent (no message, no ping) this
// long; the server pings every 20 s by default.
const readIdle = 90 * time.Second

// eventBuffer is how many events wait for a slow reader before the socket
// goroutine stops reading (the server then drops a socket that falls too
// far behind, and the client reconnects).
const eventBuffer = 64

// Event is one event of the realtime socket: a [StateEvent],
// [StartTalkingEvent], [StopTalkingEvent], [ErrorEvent] or
// [DisconnectedEvent]. Events are plain values.
type Event interface{ event() }

// StateEvent is session.state_updated: the session is now in State. Every
// socket, the first and each reconnection, starts with one carrying the
// current state. Reason says why a closing or closed session ends (stop,
// idle, duration, join, shutdown, ...); it is empty when the server sent
// none.
type StateEvent struct {
	State  fsm.State
	Reason string
}

// StartTalkingEvent is avatar_start_talking: the avatar starts speaking a
// task for Duration.
type StartTalkingEvent struct {
	TaskID   string
	Duration time.Duration
}

// StopTalkingEvent is avatar_stop_talking: the avatar stopped speaking a
// task after Duration; Interrupted when it was cut short.
type StopTalkingEvent struct {
	TaskID      string
	Duration    time.Duration
	Interrupted bool
}

// ErrorEvent is the server's refusal of a client message ({"type":
// "error"}), as the typed error.
type ErrorEvent struct {
	Err *sserrors.Error
}

// DisconnectedEvent says the socket ended. When Reconnecting, the client
// opens it again by itself (the next socket starts with a StateEvent);
// otherwise the event channel closes after it. Err is why: a
// *websocket.CloseError, a *TransportError, or the typed refusal of a
// reconnection.
type DisconnectedEvent struct {
	Err          error
	Reconnecting bool
}

func (StateEvent) event()        {}
func (StartTalkingEvent) event() {}
func (StopTalkingEvent) event()  {}
func (ErrorEvent) event()        {}
func (DisconnectedEvent) event() {}

// stream is a Session's realtime socket and its goroutine.
type stream struct {
	s      *Session
	events chan Event
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	conn *websocket.Conn
}

// Connect opens the session's realtime socket and returns its events, in
// order, until the session is closed, ctx ends or [Session.Close] or
// [Session.Stop] is called; then the channel closes. ctx bounds the whole
// stream, not only the dial. The first event is a StateEvent with the
// current state (opening the socket moves connecting to connected). The
// events' states feed the guard; so does the socket's opening: once Connect
// returns, the guard knows the session connected (or later), and a command
// sent at once is not refused for an event not yet read.
//
// When the socket drops, or the server closes it with 1001 (going away),
// 1011, 1012 (service restart) or 1013, the client reopens it by itself with
// a jittered backoff (WithReconnectBackoff) through the same endpoint, and
// says so with a DisconnectedEvent; a reconnection refused for the moment
// (429: the account's request rate, the service full) is tried again after
// its Retry-After, capped by the backoff's maximum. It stops when a
// reconnection is refused with another 4xx (the session closed: 10004,
// 10005; or 401), after a normal close (1000: the session closed, or
// another socket of the session replaced this one), or after any other
// close code.
//
// The socket is accepted in connecting and connected: in another known
// state the guard refuses it with the state's 1000x error. A refused
// upgrade is its typed error; a dial without an answer a *TransportError.
// A second Connect replaces the first socket (whose channel closes).
func (s *Session) Connect(ctx context.Context) (<-chan Event, error) {
	if st := s.guard.State(); s.c.guard && st != fsm.Connecting && st != fsm.Connected {
		return nil, fsm.StateError(st)
	}
	s.connectMu.Lock()
	defer s.connectMu.Unlock()
	if old := s.current(); old != nil {
		old.close()
	}
	conn, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	st := &stream{s: s, events: make(chan Event, eventBuffer), ctx: sctx, cancel: cancel, done: make(chan struct{}), conn: conn}
	s.mu.Lock()
	s.stream = st
	s.mu.Unlock()
	go st.run()
	return st.events, nil
}

// dial opens one socket. An open socket means the session is connected:
// the server joins it before it answers the upgrade.
func (s *Session) dial(ctx context.Context) (*websocket.Conn, error) {
	conn, resp, err := s.c.dialer.DialContext(ctx, s.realtime, nil)
	if err == nil {
		s.guard.Observe(fsm.Connected)
		return conn, nil
	}
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		e := sserrors.FromResponse(resp)
		resp.Body.Close()
		s.learn(e)
		return nil, e
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, &TransportError{Op: "GET realtime socket", Err: err}
}

// close ends the stream and waits for its goroutine.
func (st *stream) close() {
	st.cancel()
	st.mu.Lock()
	if st.conn != nil {
		st.conn.Close()
	}
	st.mu.Unlock()
	<-st.done
}

func (st *stream) setConn(c *websocket.Conn) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ctx.Err() != nil {
		c.Close()
		return false
	}
	st.conn = c
	return true
}

// emit delivers ev unless the stream is ending.
func (st *stream) emit(ev Event) bool {
	select {
	case st.events <- ev:
		return true
	case <-st.ctx.Done():
		return false
	}
}

func (st *stream) run() {
	defer close(st.done)
	defer close(st.events)
	defer st.cancel()
	conn := st.conn
	for {
		err := st.read(conn)
		conn.Close()
		if st.ctx.Err() != nil {
			return
		}
		if !reconnectable(err) || st.s.guard.State() == fsm.Closed {
			st.emit(DisconnectedEvent{Err: err})
			return
		}
		if !st.emit(DisconnectedEvent{Err: err, Reconnecting: true}) {
			return
		}
		if conn = st.redial(); conn == nil {
			return
		}
	}
}

// redial opens the socket again, with backoff, until it opens (nil when
// the stream ends or a refusal is final).
func (st *stream) redial() *websocket.Conn {
	// wait is the last refusal's Retry-After, capped like every delay.
	var wait time.Duration
	for attempt := 0; ; attempt++ {
		if sleep(st.ctx, max(st.s.c.reconnect.delay(attempt), wait)) != nil {
			return nil
		}
		conn, err := st.s.dial(st.ctx)
		if err == nil {
			if !st.setConn(conn) {
				return nil
			}
			return conn
		}
		if st.ctx.Err() != nil {
			return nil
		}
		wait = 0
		if e, ok := sserrors.As(err); ok && e.Status >= 400 && e.Status <= 499 {
			// A 429 (the account's request rate, the service full) is
			// for the moment; any other 4xx is final.
			if retry, after := sserrors.Retryable(e); retry {
				wait = min(after, st.s.c.reconnect.max)
				continue
			}
			st.emit(DisconnectedEvent{Err: err})
			return nil
		}
	}
}

// reconnectable reports whether a socket that ended with err is worth
// opening again.
func reconnectable(err error) bool {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.CloseGoingAway, websocket.CloseServiceRestart, websocket.CloseTryAgainLater,
			websocket.CloseInternalServerErr, websocket.CloseAbnormalClosure:
			return true
		}
		return false
	}
	return true // dropped without a close frame, or silent too long
}

// wireMessage is any server message.
type wireMessage struct {
	Type        string `json:"type"`
	EventType   string `json:"event_type"`
	State       string `json:"state"`
	Reason      string `json:"reason"`
	TaskID      string `json:"task_id"`
	DurationMS  int64  `json:"duration_ms"`
	Interrupted bool   `json:"interrupted"`
}

// read delivers conn's messages until it fails, and returns why.
func (st *stream) read(conn *websocket.Conn) error {
	_ = conn.SetReadDeadline(time.Now().Add(readIdle))
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(readIdle))
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(readIdle))
		var m wireMessage
		if json.Unmarshal(data, &m) != nil {
			continue // not ours to judge: skip it
		}
		ev, ok := st.decode(m, data)
		if !ok {
			continue
		}
		if !st.emit(ev) {
			return st.ctx.Err()
		}
	}
}

// decode turns a message into an Event, observing states; unknown types
// are skipped.
func (st *stream) decode(m wireMessage, data []byte) (Event, bool) {
	typ := m.Type
	if typ == "" {
		typ = m.EventType
	}
	switch typ {
	case typeStateUpdated:
		s, err := fsm.ParseState(m.State)
		if err != nil {
			return nil, false
		}
		st.s.guard.Observe(s)
		return StateEvent{State: s, Reason: m.Reason}, true
	case typeStartTalking:
		return StartTalkingEvent{TaskID: m.TaskID, Duration: time.Duration(m.DurationMS) * time.Millisecond}, true
	case typeStopTalking:
		return StopTalkingEvent{TaskID: m.TaskID, Duration: time.Duration(m.DurationMS) * time.Millisecond, Interrupted: m.Interrupted}, true
	case typeError:
		// The message carries code and message as an HTTP error body does;
		// its status is the code's catalog status.
		return ErrorEvent{Err: sserrors.Parse(0, data)}, true
	}
	return nil, false
}
