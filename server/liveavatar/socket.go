package liveavatar

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// LITE socket messages.
const (
	TypeStateUpdated     = "session.state_updated"
	TypeSpeak            = "agent.speak"
	TypeSpeakEnd         = "agent.speak_end"
	TypeInterrupt        = "agent.interrupt"
	TypeStartListening   = "agent.start_listening"
	TypeStopListening    = "agent.stop_listening"
	TypeKeepAlive        = "session.keep_alive"
	TypeSpeakStarted     = "agent.speak_started"
	TypeSpeakEnded       = "agent.speak_ended"
	TypeSpeakInterrupted = "agent.speak_interrupted"
	TypeError            = "error"
)

// Close reasons of the LITE socket.
const (
	// CloseSessionClosed follows the closed state (code 1000).
	CloseSessionClosed = "session closed"
	// CloseShuttingDown closes every socket on Shutdown (code 1001).
	CloseShuttingDown = "server shutting down"
	// CloseTooManyMessages closes a socket over its message rate (1008).
	CloseTooManyMessages = realtime.ReasonTooManyMessages
	// CloseSlowReader closes a socket whose client does not read (1008).
	CloseSlowReader = realtime.ReasonSlowReader
)

var (
	errSocketUsed = sserrors.ErrSessionStateConnected.WithCause(errors.New("liveavatar: the ws_url was already used"))
	errShutdown   = sserrors.ErrBackendUnavailable.WithRetryAfter(time.Second)
)

// serveSocket authenticates the upgrade of a LITE socket (its ws_url
// credential, the origin, the rate budget), moves the session from
// connecting to connected and serves the socket. Every refusal is an
// envelope with its status, never a 101: an unknown session or a wrong
// credential 401/400112; a session not connecting its state's error (the
// ws_url opens one socket: connected answers 10003).
func (h *Handler) serveSocket(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	account, err := h.openSocket(w, r, id)
	if err != nil {
		if errors.Is(err, sserrors.ErrSessionNotFound) {
			err = sserrors.ErrUnauthorized // an unknown id answers like a wrong credential
		}
		h.fail(w, r, h.accountOf(caller{account: account}), id, err)
	}
}

// openSocket does serveSocket's work; it returns the refusal to answer,
// and nil once the upgrade has answered.
func (h *Handler) openSocket(w http.ResponseWriter, r *http.Request, id string) (account string, err error) {
	if !h.origins.AllowsSocket(r) {
		return "", sserrors.ErrForbidden
	}
	account, ok := h.keys.verifySocket(r.URL.Query().Get("credential"), id)
	if !ok {
		return "", sserrors.ErrUnauthorized
	}
	ctx := r.Context()
	if h.allow != nil {
		if err := h.allow(ctx, server.ResolveAccount(h.accounts, account)); err != nil {
			return account, err
		}
	}
	h.mu.Lock()
	switch {
	case h.closed || h.draining:
		err = errShutdown
	case h.opening[id] || h.bySession[id] != nil:
		err = errSocketUsed
	default:
		h.opening[id] = true
	}
	h.mu.Unlock()
	if err != nil {
		return account, err
	}
	defer func() {
		h.mu.Lock()
		delete(h.opening, id)
		h.mu.Unlock()
	}()
	info, err := h.mgr.Get(ctx, account, id)
	switch {
	case err != nil:
		return account, err
	case info.State == fsm.Connected:
		return account, errSocketUsed
	case info.State != fsm.Connecting:
		return account, sserrors.SessionState(info.State.String())
	case !server.IsHandshake(r):
		// Checked before Join: an upgrade the upgrader then refused would
		// leave the session connected with no socket, its ws_url spent.
		return account, sserrors.ErrInvalidParameter
	}
	if info, err = h.mgr.Join(ctx, account, id); err != nil {
		return account, err
	}
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader answered (the handshake was checked above, so only
		// a connection that cannot be taken over gets here); the session
		// stays connected until idle, as after a dropped socket.
		return account, nil
	}
	h.serve(ws, account, info)
	return account, nil
}

// liteSocket is one session's LITE socket on this node: its Conn (the
// reader, the writer and the bounds every surface's sockets share), the
// state it has sent, and the model of the avatar's speech. Its methods
// are safe for concurrent use.
type liteSocket struct {
	h       *Handler
	id      string
	account string
	// acct is the account resolved by name, for hooks.
	acct   session.Account
	conn   *realtime.Conn
	ctx    context.Context
	speech *speech

	mu    sync.Mutex
	epoch uint64
	state fsm.State
}

// serve registers the socket of a session just joined (connected at
// info.Epoch), queues session.state_updated connecting then connected, and
// starts its goroutines.
func (h *Handler) serve(ws *websocket.Conn, account string, info session.Info) {
	acct := h.accountOf(caller{account: account})
	h.mu.Lock()
	// Draining too: Drain waits on h.wg, which must not be raised from zero
	// meanwhile.
	if h.closed || h.draining {
		h.mu.Unlock()
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, CloseShuttingDown), time.Now().Add(h.sock.WriteTimeout))
		ws.Close()
		return
	}
	s := &liteSocket{h: h, id: info.ID, account: account, acct: acct, epoch: info.Epoch, state: fsm.Connected}
	s.conn = realtime.NewConn(h.ctx, ws, realtime.ConnConfig{Socket: h.sock, OnMessage: s.handle, OnClose: s.closed})
	s.ctx = s.conn.Context()
	s.speech = newSpeech(h.clock, s.conn.Send)
	old := h.bySession[s.id]
	h.bySession[s.id] = s
	h.wg.Add(2)
	h.mu.Unlock()
	if h.hooks.SocketOpened != nil {
		h.hooks.SocketOpened(s.info())
	}
	if old != nil {
		old.conn.Close(websocket.CloseNormalClosure, realtime.ReasonReplaced)
	}
	s.conn.Send(stateMessage(fsm.Connecting, session.ReasonNone))
	s.conn.Send(stateMessage(fsm.Connected, session.ReasonNone))
	s.conn.Start(&h.wg)
	// A transition between Join and the registration reached no socket:
	// catch up from the store.
	if now, err := h.mgr.Get(s.ctx, account, s.id); err == nil {
		s.applyState(now.State, now.Epoch, now.Reason)
	}
}

// closed forgets the socket once its connection is dropped.
func (s *liteSocket) closed() {
	h := s.h
	s.speech.close()
	h.mu.Lock()
	if h.bySession[s.id] == s {
		delete(h.bySession, s.id)
	}
	h.mu.Unlock()
	if h.hooks.SocketClosed != nil {
		h.hooks.SocketClosed(s.info())
	}
}

// onEvent routes a Manager transition to this node's socket of the session.
func (h *Handler) onEvent(ev session.Event) {
	if ev.To == fsm.Unknown {
		return
	}
	h.mu.Lock()
	s := h.bySession[ev.SessionID]
	h.mu.Unlock()
	if s != nil {
		s.applyState(ev.To, ev.Epoch, ev.Reason)
	}
}

// applyState sends closing and closed (and the closed state ends the
// socket); older news (by epoch) is ignored.
func (s *liteSocket) applyState(state fsm.State, epoch uint64, reason session.Reason) {
	if state >= fsm.Closing {
		// Silence the avatar before the state goes out, and outside s.mu:
		// speech queues its events (taking s.mu) under its own lock.
		s.speech.close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch <= s.epoch || state <= s.state {
		return
	}
	s.epoch = epoch
	if state == fsm.Closed && s.state < fsm.Closing {
		s.conn.Send(stateMessage(fsm.Closing, reason))
	}
	s.state = state
	s.conn.Send(stateMessage(state, reason))
	if state == fsm.Closed {
		s.conn.Close(websocket.CloseNormalClosure, CloseSessionClosed)
	}
}

type stateUpdate struct {
	Type   string `json:"type"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

func stateMessage(state fsm.State, reason session.Reason) []byte {
	b, _ := json.Marshal(stateUpdate{Type: TypeStateUpdated, State: state.String(), Reason: CloseReason(reason)})
	return b
}

type errorMessage struct {
	Type    string     `json:"type"`
	EventID string     `json:"event_id,omitempty"`
	Error   errorField `json:"error"`
}

type errorField struct {
	Type    string `json:"type"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// errorEvent is the error event answering a message the socket could not
// serve: type invalid_request_error for a bad message, session_state_error
// for one the session's state refuses, server_error otherwise.
func errorEvent(eventID string, err error) []byte {
	e := translate(err)
	typ := "server_error"
	switch {
	case e.Status == http.StatusBadRequest && e.Code >= sserrors.CodeSessionStateNew && e.Code <= sserrors.CodeSessionStateClosed:
		typ = "session_state_error"
	case e.Status < 500:
		typ = "invalid_request_error"
	}
	b, _ := json.Marshal(errorMessage{Type: TypeError, EventID: eventID, Error: errorField{Type: typ, Code: int(e.Code), Message: e.Message}})
	return b
}

func (s *liteSocket) info() realtime.SocketInfo {
	return realtime.SocketInfo{Account: s.acct, SessionHash: session.ShortHash(s.id)}
}

func (s *liteSocket) sendData(msg []byte) { s.conn.Send(msg) }

// isClosing reports whether the socket or its session is closing: what
// the client sends then is not served.
func (s *liteSocket) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state >= fsm.Closing || s.conn.Closing()
}

// clientMessage is any message a LITE client sends.
type clientMessage struct {
	Type    string  `json:"type"`
	EventID string  `json:"event_id"`
	Audio   *string `json:"audio"`
}

// MaxEventIDBytes bounds a client message's event_id: the socket keeps it
// while the utterance plays and sends it back in each speech event.
const MaxEventIDBytes = 256

var (
	errBadMessage  = sserrors.ErrInvalidParameter.WithCause(errors.New("liveavatar: not a JSON object with a known type"))
	errLongEventID = sserrors.ErrInvalidParameter.WithCause(errors.New("liveavatar: event_id is longer than 256 bytes"))
	errSpeechQueue = sserrors.ErrInvalidParameter.WithCause(errors.New("liveavatar: too many utterances waiting to play"))
	errBadAudio    = sserrors.ErrInvalidParameter.WithCause(errors.New("liveavatar: audio is not non-empty base64 PCM"))
	errNoUtterance = sserrors.ErrInvalidParameter.WithCause(errors.New("liveavatar: agent.speak_end without agent.speak"))
)

// handle serves one client message. A message the socket cannot serve
// gets an error event; every message counts as activity.
func (s *liteSocket) handle(typ int, data []byte) {
	h := s.h
	if s.isClosing() {
		return // a close frame is on its way
	}
	var msg clientMessage
	if typ != websocket.TextMessage || json.Unmarshal(data, &msg) != nil {
		_ = h.mgr.Touch(s.ctx, s.account, s.id)
		s.sendData(errorEvent("", errBadMessage))
		return
	}
	if len(msg.EventID) > MaxEventIDBytes {
		_ = h.mgr.Touch(s.ctx, s.account, s.id)
		s.sendData(errorEvent("", errLongEventID))
		return
	}
	var err error
	switch msg.Type {
	case TypeSpeak:
		var pcm []byte
		if msg.Audio != nil {
			pcm, err = base64.StdEncoding.DecodeString(*msg.Audio)
			if err != nil {
				pcm, err = base64.RawStdEncoding.DecodeString(*msg.Audio)
			}
		}
		if err != nil || len(pcm) == 0 {
			err = errBadAudio
			_ = h.mgr.Touch(s.ctx, s.account, s.id)
			break
		}
		if _, err = h.mgr.Command(s.ctx, s.account, s.id, fsm.CmdTask); err == nil && !s.speech.speak(eventIDOr(msg.EventID), AudioDuration(len(pcm))) {
			err = errSpeechQueue
		}
	case TypeSpeakEnd:
		if _, err = h.mgr.Command(s.ctx, s.account, s.id, fsm.CmdTask); err == nil && !s.speech.end() {
			err = errNoUtterance
		}
	case TypeInterrupt:
		if _, err = h.mgr.Command(s.ctx, s.account, s.id, fsm.CmdInterrupt); err == nil {
			s.speech.interrupt()
		}
	case TypeStartListening, TypeStopListening:
		cmd := fsm.CmdStartListening
		if msg.Type == TypeStopListening {
			cmd = fsm.CmdStopListening
		}
		if _, err = h.mgr.Command(s.ctx, s.account, s.id, cmd); err == nil {
			err = h.mgr.Touch(s.ctx, s.account, s.id)
		}
	case TypeKeepAlive:
		_, err = h.mgr.Command(s.ctx, s.account, s.id, fsm.CmdKeepAlive)
	default:
		_ = h.mgr.Touch(s.ctx, s.account, s.id)
		err = errBadMessage
	}
	// A command that raced the session's close is dropped, as every
	// message after closing is.
	closed := errors.Is(err, sserrors.ErrSessionStateClosing) || errors.Is(err, sserrors.ErrSessionStateClosed)
	if err != nil && !closed && !s.isClosing() {
		s.sendData(errorEvent(msg.EventID, err))
	}
}

func eventIDOr(id string) string {
	if id == "" {
		return newTaskID()
	}
	return id
}
