package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// maxEarly bounds the messages held for a socket before its first
// session.state_updated is queued.
const maxEarly = 16

// replacedReason is the close reason of a socket replaced by a newer one,
// on this node or (with a Relay) on another.
const replacedReason = "replaced by a new connection"

// hub maps session ids to this node's realtime socket for each session. Its
// methods look clients up under its lock and call them after releasing it.
type hub struct {
	mu        sync.Mutex
	bySession map[string]*client
	closed    bool
	// turns serialises, per session, registering a socket and publishing
	// its announcement (with a Relay only).
	turns map[string]*turn
	// retired holds the tokens of this node's last retiredMax sockets that
	// were replaced or closed (with a Relay only), oldest first in
	// retiredOrder: an announcement of one of them that reaches the relay
	// late (its Publish timed out, yet the command was already in Redis's
	// hands) is stale and must not close the session's newer socket.
	retired      map[string]struct{}
	retiredOrder []string
	// heard holds, for the last heardMax (session, node) pairs announced on
	// the relay, the highest sequence number heard (see [hub.announced]).
	heard      map[heardKey]uint64
	heardOrder []heardKey
	// node names this node in its sockets' tokens, and seq numbers them.
	node string
	seq  atomic.Uint64
}

// heardKey is one node's announcements of one session.
type heardKey struct{ session, node string }

// heardMax bounds hub.heard, as retiredMax bounds hub.retired.
const heardMax = 4096

// newToken returns a token for a new socket of this node: the node's name
// and the next number of this node, "node.seq" (seq in base 36). Taken in
// the session's turn, the numbers of one session's sockets on this node
// grow in the order they are registered and announced.
func (h *hub) newToken() string {
	return h.node + "." + strconv.FormatUint(h.seq.Add(1), 36)
}

// parseToken splits a token made by newToken; ok is false for any other
// string, which then carries no order.
func parseToken(token string) (node string, seq uint64, ok bool) {
	node, n, found := strings.Cut(token, ".")
	if !found || node == "" {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(n, 36, 64)
	return node, seq, err == nil
}

// supersededLocked reports whether an announcement of token for the
// session comes after a later one of the same node (its Publish gave up
// yet it reached the relay late, after the node's next announcement), and
// otherwise remembers it as the node's latest. h.mu is held.
func (h *hub) supersededLocked(sessionID, token string) bool {
	node, seq, ok := parseToken(token)
	if !ok {
		return false
	}
	k := heardKey{sessionID, node}
	last, seen := h.heard[k]
	if seen {
		if seq <= last {
			return true
		}
		h.heard[k] = seq
		return false
	}
	if len(h.heardOrder) == heardMax {
		delete(h.heard, h.heardOrder[0])
		h.heardOrder = append(h.heardOrder[:0], h.heardOrder[1:]...)
	}
	h.heard[k] = seq
	h.heardOrder = append(h.heardOrder, k)
	return false
}

// retiredMax bounds hub.retired: a late announcement arrives within a
// Publish timeout, while the node closes far fewer sockets than this.
const retiredMax = 4096

// turn is one session's lock in hub.turns (a token in a channel of one),
// counted so that the map holds only sessions someone holds or waits for.
type turn struct {
	held chan struct{}
	refs int // guarded by hub.mu
}

func newHub() *hub {
	return &hub{
		bySession: make(map[string]*client), turns: make(map[string]*turn),
		retired: make(map[string]struct{}), heard: make(map[heardKey]uint64),
		node: rand.Text(),
	}
}

// retire remembers the token of c, a socket of this node that is gone or
// going. h.mu is held.
func (h *hub) retire(c *client) {
	if c.token == "" {
		return
	}
	if _, ok := h.retired[c.token]; ok {
		return
	}
	if len(h.retiredOrder) == retiredMax {
		delete(h.retired, h.retiredOrder[0])
		h.retiredOrder = append(h.retiredOrder[:0], h.retiredOrder[1:]...)
	}
	h.retired[c.token] = struct{}{}
	h.retiredOrder = append(h.retiredOrder, c.token)
}

// lockSession waits for the session's turn and returns the function that
// ends it. With a Relay, a node registers a session's socket and publishes
// its announcement in one turn, so that the relay carries a node's
// announcements of one session in the order the node registered them.
func (h *hub) lockSession(sessionID string) (unlock func()) {
	h.mu.Lock()
	t := h.turns[sessionID]
	if t == nil {
		t = &turn{held: make(chan struct{}, 1)}
		h.turns[sessionID] = t
	}
	t.refs++
	h.mu.Unlock()
	t.held <- struct{}{}
	return func() {
		<-t.held
		h.mu.Lock()
		defer h.mu.Unlock()
		if t.refs--; t.refs == 0 {
			delete(h.turns, sessionID)
		}
	}
}

// announced applies an announcement heard on the relay: token is now the
// session's socket. The session's socket here is marked announced when it
// is token's socket; otherwise, if it was announced already, it is
// forgotten and returned, for the caller to close. A socket not yet
// announced is newer than the announcement and stays (see [Relay]). A late
// announcement, which reached the relay after a later one (its Publish gave
// up, yet the command was already in the relay's hands), closes nothing:
// one that comes after a later announcement of the same node for the
// session, or one of a socket this node replaced or closed itself.
func (h *hub) announced(sessionID, token string) (old *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	superseded := h.supersededLocked(sessionID, token)
	c := h.bySession[sessionID]
	if c != nil && c.token == token {
		c.announced = true
		return nil
	}
	_, retired := h.retired[token]
	if c == nil || superseded || retired || !c.announced {
		return nil
	}
	delete(h.bySession, sessionID)
	return c
}

// register makes c its session's socket and returns the socket it replaces.
// It refuses (false) once the hub is closed.
func (h *hub) register(c *client) (old *client, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	old = h.bySession[c.sessionID]
	h.bySession[c.sessionID] = c
	if old != nil {
		h.retire(old)
	}
	return old, true
}

// remove forgets c, unless a newer socket replaced it.
func (h *hub) remove(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.retire(c)
	if h.bySession[c.sessionID] == c {
		delete(h.bySession, c.sessionID)
	}
}

func (h *hub) get(sessionID string) *client {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bySession[sessionID]
}

// send queues msg for the session's socket, if it has one here.
func (h *hub) send(sessionID string, msg []byte) {
	if c := h.get(sessionID); c != nil {
		c.sendData(msg)
	}
}

// state passes a transition to the session's socket, if it has one here.
func (h *hub) state(sessionID string, to fsm.State, epoch uint64) {
	if c := h.get(sessionID); c != nil {
		c.applyState(to, epoch)
	}
}

// close refuses later registrations and returns the sockets registered.
func (h *hub) close() []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	return h.allLocked()
}

func (h *hub) all() []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.allLocked()
}

func (h *hub) allLocked() []*client {
	out := make([]*client, 0, len(h.bySession))
	for _, c := range h.bySession {
		out = append(out, c)
	}
	return out
}

// frame is one item of a socket's send queue: a text message, or (code
// non-zero) the close frame that ends the queue.
type frame struct {
	data   []byte
	code   int
	reason string
}

// client is one realtime socket: a reader and a writer goroutine around a
// bounded send queue. Its methods are safe for concurrent use.
type client struct {
	srv       *Server
	sessionID string
	account   string
	info      SocketInfo
	// token identifies the socket in relay announcements (with a Relay
	// only); it is never logged nor shown to hooks.
	token string
	// announced is set once the socket's own announcement came back
	// through the relay; guarded by srv.hub.mu.
	announced bool
	ws        *websocket.Conn
	ctx       context.Context
	cancel    context.CancelFunc

	send       chan frame
	readerDone chan struct{}
	killOnce   sync.Once
	sentClose  atomic.Bool

	mu        sync.Mutex
	ready     bool // the first session.state_updated is queued
	haveState bool
	state     fsm.State
	epoch     uint64
	early     [][]byte
	closing   bool // nothing more is queued
	// lastSent is the last state queued, so a snapshot never repeats it.
	lastSent fsm.State
}

func (s *Server) newClient(ws *websocket.Conn, account, sessionID string) *client {
	ctx, cancel := context.WithCancel(s.ctx)
	return &client{
		srv:        s,
		sessionID:  sessionID,
		account:    account,
		info:       SocketInfo{Account: account, SessionHash: ShortHash(sessionID)},
		ws:         ws,
		ctx:        ctx,
		cancel:     cancel,
		send:       make(chan frame, s.rt.SendQueue),
		readerDone: make(chan struct{}),
	}
}

// applyState records a transition (or a snapshot) with its epoch; older
// news is ignored. Once ready, a newer state is queued, and the closed state
// ends the socket.
func (c *client) applyState(state fsm.State, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.haveState && epoch <= c.epoch {
		return
	}
	c.haveState, c.state, c.epoch = true, state, epoch
	if c.ready {
		c.queueStateLocked()
	}
}

// markReady queues the first session.state_updated (the latest state known)
// and the messages held until then.
func (c *client) markReady() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = true
	c.queueStateLocked()
	for _, m := range c.early {
		c.queueLocked(m)
	}
	c.early = nil
}

func (c *client) queueStateLocked() {
	if c.state == c.lastSent {
		return
	}
	c.lastSent = c.state
	c.queueLocked(encodeState(c.state.String()))
	if c.state == fsm.Closed {
		c.closeLocked(websocket.CloseNormalClosure, "session closed")
	}
}

// sendData queues a message, holding it while the socket is not ready.
func (c *client) sendData(msg []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		if len(c.early) < maxEarly {
			c.early = append(c.early, msg)
		}
		return
	}
	c.queueLocked(msg)
}

// queueLocked queues msg without blocking; a full queue means the client
// does not read, and it is dropped.
func (c *client) queueLocked(msg []byte) {
	if c.closing {
		return
	}
	select {
	case c.send <- frame{data: msg}:
	default:
		c.closing = true
		c.kill()
	}
}

// closeWith queues a close frame after the messages already queued.
func (c *client) closeWith(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

func (c *client) closeLocked(code int, reason string) {
	if c.closing {
		return
	}
	c.closing = true
	select {
	case c.send <- frame{code: code, reason: reason}:
	default:
		c.kill()
	}
}

// kill drops the connection at once; both goroutines then end. Cancelling
// the server's context (Close) kills every client the same way.
func (c *client) kill() {
	c.killOnce.Do(func() {
		c.cancel()
		c.ws.Close()
	})
}

func (c *client) writeLoop() {
	defer c.srv.wg.Done()
	rt := c.srv.rt
	ping := time.NewTicker(rt.PingInterval)
	defer ping.Stop()
	for {
		select {
		case f := <-c.send:
			deadline := time.Now().Add(rt.WriteTimeout)
			if f.code != 0 {
				c.sentClose.Store(true)
				err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(f.code, f.reason), deadline)
				if err == nil {
					// Wait for the client's close frame, within reason.
					grace := time.NewTimer(rt.CloseGrace)
					select {
					case <-c.readerDone:
					case <-c.ctx.Done():
					case <-grace.C:
					}
					grace.Stop()
				}
				c.kill()
				return
			}
			c.ws.SetWriteDeadline(deadline)
			if err := c.ws.WriteMessage(websocket.TextMessage, f.data); err != nil {
				c.kill()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(rt.WriteTimeout)); err != nil {
				c.kill()
				return
			}
		case <-c.ctx.Done():
			c.kill()
			return
		}
	}
}

func (c *client) readLoop() {
	s := c.srv
	defer func() {
		close(c.readerDone)
		c.kill()
		s.hub.remove(c)
		if s.hooks.SocketClosed != nil {
			s.hooks.SocketClosed(c.info)
		}
		s.wg.Done()
	}()
	rt := s.rt
	c.ws.SetReadLimit(rt.MaxMessageBytes)
	c.ws.SetReadDeadline(time.Now().Add(rt.PongTimeout))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(rt.PongTimeout))
	})
	c.ws.SetCloseHandler(func(code int, _ string) error {
		// Answer the client's close unless ours is already on its way.
		if !c.sentClose.Swap(true) {
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(rt.WriteTimeout))
		}
		return nil
	})
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(rt.PongTimeout))
		c.handle(typ, data)
	}
}

// handle serves one client message.
func (c *client) handle(typ int, data []byte) {
	s := c.srv
	msg, err := DecodeClientMessage(data)
	if typ != websocket.TextMessage {
		err = sserrors.ErrInvalidParameter
	}
	if err != nil {
		// Any message is activity, even one refused.
		_ = s.mgr.Touch(c.ctx, c.account, c.sessionID)
		c.sendData(encodeError(err))
		return
	}
	switch msg.Type {
	case TypeSpeak:
		if _, err := s.mgr.Command(c.ctx, c.account, c.sessionID, fsm.CmdTask); err != nil {
			c.sendData(encodeError(err))
			return
		}
		if _, _, err := s.say(c.ctx, c.sessionID, msg.Text); err != nil {
			c.sendData(encodeError(err))
		}
	case TypeInterrupt:
		if _, err := s.mgr.Command(c.ctx, c.account, c.sessionID, fsm.CmdInterrupt); err != nil {
			c.sendData(encodeError(err))
			return
		}
		if err := s.hush(c.ctx, c.sessionID); err != nil {
			c.sendData(encodeError(err))
		}
	case TypeKeepAlive:
		if _, err := s.mgr.Command(c.ctx, c.account, c.sessionID, fsm.CmdKeepAlive); err != nil {
			c.sendData(encodeError(err))
		}
	}
}

// serveRealtime authenticates and upgrades the realtime socket. Every
// refusal is the JSON error with its status, never a 101.
func (s *Server) serveRealtime(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, token := q.Get("session_id"), q.Get("session_token")
	req := request{sessionID: id}
	if s.isShutdown() {
		s.fail(w, r, req, errUnavailable)
		return
	}
	if !s.originAllowed(r) {
		s.fail(w, r, req, errForbiddenOrigin)
		return
	}
	account, ok := s.access.verify(token, id)
	if !ok {
		s.fail(w, r, req, sserrors.ErrUnauthorized)
		return
	}
	req.account.Name = account
	ctx := r.Context()
	info, err := s.mgr.Get(ctx, account, id)
	if err == nil && info.State != fsm.Connecting && info.State != fsm.Connected {
		err = sserrors.SessionState(info.State.String())
	}
	if err == nil && !isHandshake(r) {
		err = sserrors.ErrInvalidParameter
	}
	if err == nil {
		_, err = s.mgr.Join(ctx, account, id)
	}
	if err != nil {
		if errors.Is(err, sserrors.ErrSessionNotFound) {
			err = sserrors.ErrUnauthorized // an unknown id answers like a wrong token
		}
		s.fail(w, r, req, err)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered; the session stays connected, as after a drop
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(s.rt.WriteTimeout))
		ws.Close()
		return
	}
	s.wg.Add(2)
	s.mu.Unlock()

	c := s.newClient(ws, account, id)
	if s.relay != nil {
		// One turn per session: register, then announce (after the
		// socket is ready, so that a slow relay does not hold it up).
		defer s.hub.lockSession(id)()
		c.token = s.hub.newToken()
	}
	old, registered := s.hub.register(c)
	if s.hooks.SocketOpened != nil {
		s.hooks.SocketOpened(c.info)
	}
	go c.writeLoop()
	go c.readLoop()
	if old != nil {
		old.closeWith(websocket.CloseNormalClosure, replacedReason)
	}
	if !registered {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
		return
	}
	// The state after registration: transitions from now on reach c, and
	// epochs order them against this snapshot.
	if info, err := s.mgr.Get(c.ctx, account, id); err == nil {
		c.applyState(info.State, info.Epoch)
	} else if errors.Is(err, sserrors.ErrSessionNotFound) {
		c.applyState(fsm.Closed, ^uint64(0))
	}
	c.markReady()
	if s.relay != nil {
		s.announce(ctx, c)
	}
}

// originAllowed applies the origin policy: no Origin header, the server's
// own origin, or one listed in Config.Origins.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || s.anyOrig {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return s.origins[strings.ToLower(strings.TrimRight(origin, "/"))]
}

// isHandshake reports whether r is a WebSocket version 13 opening handshake
// the upgrader will accept.
func isHandshake(r *http.Request) bool {
	if !websocket.IsWebSocketUpgrade(r) {
		return false
	}
	version := false
	for _, v := range r.Header.Values("Sec-Websocket-Version") {
		for t := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(t) == "13" {
				version = true
			}
		}
	}
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-Websocket-Key"))
	return version && err == nil && len(key) == 16
}
