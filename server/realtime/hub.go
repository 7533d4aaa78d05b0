package realtime

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// maxEarly bounds the messages held for a socket before its first
// session.state_updated is queued.
const maxEarly = 16

// Close reasons the Hub sends.
const (
	// ReasonReplaced closes a socket replaced by a newer one of its session,
	// on this node or (with a Relay) on another (code 1000).
	ReasonReplaced = "replaced by a new connection"
	// ReasonSessionClosed closes a socket after the closed state (code
	// 1000).
	ReasonSessionClosed = "session closed"
	// ReasonShuttingDown closes every socket on Shutdown (code 1001).
	ReasonShuttingDown = "server shutting down"
	// ReasonInvalidUTF8 closes a socket that sent a text frame that is not
	// UTF-8 (code 1007).
	ReasonInvalidUTF8 = "text frame is not valid UTF-8"
	// ReasonTooManyMessages closes a socket that sent more than
	// SocketConfig.MessageRate allows (code 1008).
	ReasonTooManyMessages = "too many messages: over the socket's message rate"
	// ReasonSlowReader closes a socket whose client does not read what the
	// server sends (SocketConfig.SendQueue messages behind; code 1008).
	ReasonSlowReader = "client too slow: send queue full"
	// ReasonStateUnavailable closes a new socket whose session's state
	// could not be read (the Store failed), so that its first message
	// cannot be the session's state (code 1011; the client reopens it).
	ReasonStateUnavailable = "session state unavailable: reconnect"
	// ReasonTooBig closes a socket that sent a message larger than
	// SocketConfig.MaxMessageBytes (code 1009).
	ReasonTooBig = "message too big: over the socket's size bound"
	// ReasonClientClosed answers a close frame of the client, with the
	// client's code.
	ReasonClientClosed = "closed by the client"
)

// Hub runs one node's realtime sockets: at most one per session, each with
// a reader and a writer goroutine around a bounded send queue, fed by the
// Manager's transitions and the node's simulated speech. The HTTP layer
// authenticates and upgrades a connection, then hands it to [Hub.Serve].
// A Hub is safe for concurrent use by multiple goroutines.
type Hub struct {
	mgr    *session.Manager
	sock   SocketConfig
	hooks  Hooks
	speech *speaker
	relay  Relay        // nil on a single node
	order  *socketOrder // nil on a single node

	unsub   func()
	unrelay func()

	// ctx is cancelled by Close; socket goroutines derive theirs from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // socket goroutines

	mu        sync.Mutex
	bySession map[string]*client
	closed    bool
	draining  bool // see Drain
}

// New returns a Hub for cfg. It subscribes once to cfg.Manager's
// transitions, and to cfg.Relay when there is one (it fails when that
// subscription fails); call Shutdown or Close to release the subscriptions
// and the sockets.
func New(cfg Config) (*Hub, error) {
	if cfg.Manager == nil {
		return nil, errors.New("realtime: Config.Manager is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.TaskDuration == nil {
		cfg.TaskDuration = DefaultTaskDuration
	}
	cfg.Socket = cfg.Socket.WithDefaults()
	h := &Hub{
		mgr:       cfg.Manager,
		sock:      cfg.Socket,
		hooks:     cfg.Hooks,
		bySession: make(map[string]*client),
		unrelay:   func() {},
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.speech = newSpeaker(cfg.Clock, cfg.TaskDuration, h.send)
	if cfg.Relay != nil {
		cancel, err := cfg.Relay.Subscribe(h.onRelay)
		if err != nil {
			h.cancel()
			return nil, err
		}
		h.relay, h.unrelay, h.order = cfg.Relay, cancel, newSocketOrder()
	}
	h.unsub = cfg.Manager.Subscribe(h.onEvent)
	return h, nil
}

// Closed reports whether Shutdown or Close was called: the Hub then takes
// no new socket.
func (h *Hub) Closed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Holds reports whether this node holds a realtime socket for the session.
func (h *Hub) Holds(sessionID string) bool {
	return h.get(sessionID) != nil
}

// Serve runs ws as the realtime socket of acct's session, which the
// caller has authenticated and moved to connected: the socket replaces the
// session's previous one (closed with 1000 "replaced by a new connection",
// on whichever node it is), first receives session.state_updated with the
// session's current state, then every later state and the session's speech
// events, and its messages are served. Serve returns once the socket is
// registered and announced; the socket lives on in its own goroutines until
// the client leaves, the session closes or the Hub shuts down. On a closed
// or draining Hub the socket is closed at once with 1001, without hooks.
func (h *Hub) Serve(ctx context.Context, ws *websocket.Conn, acct session.Account, sessionID string) {
	h.mu.Lock()
	// Draining too: Drain waits on h.wg, which must not be raised from zero
	// meanwhile.
	if h.closed || h.draining {
		h.mu.Unlock()
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ReasonShuttingDown), time.Now().Add(h.sock.WriteTimeout))
		ws.Close()
		return
	}
	h.wg.Add(2)
	h.mu.Unlock()

	c := h.newClient(ws, acct, sessionID)
	if h.order != nil {
		// One turn per session: register, then announce (after the
		// socket is ready, so that a slow relay does not hold it up).
		defer h.order.lockSession(sessionID)()
		c.token = h.order.newToken()
	}
	old, registered := h.register(c)
	if h.hooks.SocketOpened != nil {
		h.hooks.SocketOpened(c.info)
	}
	c.conn.Start(&h.wg)
	if old != nil {
		old.closeWith(websocket.CloseNormalClosure, ReasonReplaced)
	}
	if !registered {
		c.closeWith(websocket.CloseGoingAway, ReasonShuttingDown)
		return
	}
	// The state after registration: transitions from now on reach c, and
	// epochs order them against this snapshot.
	if info, err := h.mgr.Get(c.ctx, c.account, sessionID); err == nil {
		c.applyState(info.State, info.Epoch, info.Reason)
	} else if errors.Is(err, sserrors.ErrSessionNotFound) {
		c.applyState(fsm.Closed, ^uint64(0), session.ReasonNone)
	} else {
		// No state to send first: nothing else may go before it. The
		// client reopens the socket (1011) once the store answers again.
		c.closeWith(websocket.CloseInternalServerErr, ReasonStateUnavailable)
		return
	}
	c.markReady()
	if h.relay != nil {
		h.announce(ctx, c)
	}
}

// Shutdown stops accepting sockets, ends the Manager and Relay
// subscriptions and simulated speech, and closes every socket with 1001
// ("server shutting down"), waiting for their goroutines until ctx is done;
// then it drops the sockets left. It does not close the Manager: to send
// clients the closed state first, close the Manager before calling
// Shutdown. Calling it again does nothing more and returns nil once the
// sockets are gone.
func (h *Hub) Shutdown(ctx context.Context) error {
	for _, c := range h.stop() {
		c.closeWith(websocket.CloseGoingAway, ReasonShuttingDown)
	}
	if err := h.waitSockets(ctx); err != nil {
		h.cancel() // kills every socket
		h.wg.Wait()
		return err
	}
	return nil
}

// waitSockets waits until the sockets' goroutines have ended, or ctx ends.
func (h *Hub) waitSockets(ctx context.Context) error { return Wait(ctx, &h.wg) }

// Wait waits for wg (a surface's socket goroutines) until ctx ends, and
// then returns ctx.Err(); the goroutines go on, so the caller drops them
// (cancelling their context) and waits again.
func Wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close drops every socket at once (no close frame) and releases what
// Shutdown releases. It returns when the sockets' goroutines have ended.
func (h *Hub) Close() error {
	h.stop()
	h.cancel() // kills every socket
	h.wg.Wait()
	return nil
}

// stop refuses new sockets, ends the subscriptions and speech (once) and
// returns the sockets registered.
func (h *Hub) stop() []*client {
	h.mu.Lock()
	first := !h.closed
	h.closed = true
	out := make([]*client, 0, len(h.bySession))
	for _, c := range h.bySession {
		out = append(out, c)
	}
	h.mu.Unlock()
	if first {
		h.unsub()
		h.unrelay()
		h.speech.close()
	}
	return out
}

// onEvent routes one Manager transition to this node's socket for the
// session, and ends its speech when it closes.
func (h *Hub) onEvent(ev session.Event) {
	if ev.To == fsm.Unknown {
		return // the end of the retention window: no socket is left by then
	}
	if ev.To >= fsm.Closing {
		h.speech.interrupt(ev.SessionID)
	}
	if c := h.get(ev.SessionID); c != nil {
		c.applyState(ev.To, ev.Epoch, ev.Reason)
	}
}

// register makes c its session's socket and returns the socket it replaces.
// It refuses (false) once the hub is closed or draining.
func (h *Hub) register(c *client) (old *client, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.draining {
		return nil, false
	}
	old = h.bySession[c.sessionID]
	h.bySession[c.sessionID] = c
	if old != nil && h.order != nil {
		h.order.retire(old.token)
	}
	return old, true
}

// remove forgets c, unless a newer socket replaced it.
func (h *Hub) remove(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.order != nil {
		h.order.retire(c.token)
	}
	if h.bySession[c.sessionID] == c {
		delete(h.bySession, c.sessionID)
	}
}

func (h *Hub) get(sessionID string) *client {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bySession[sessionID]
}

// send queues msg for the session's socket, if it has one here.
func (h *Hub) send(sessionID string, msg []byte) {
	if c := h.get(sessionID); c != nil {
		c.sendData(msg)
	}
}

// client is one realtime socket: its Conn, and the session's state as the
// socket has sent it. Its methods are safe for concurrent use.
type client struct {
	hub       *Hub
	sessionID string
	account   string
	info      SocketInfo
	// token identifies the socket in relay announcements (with a Relay
	// only); it is never logged nor shown to hooks.
	token string
	conn  *Conn
	ctx   context.Context

	mu        sync.Mutex
	ready     bool // the first session.state_updated is queued
	haveState bool
	state     fsm.State
	reason    session.Reason
	epoch     uint64
	early     [][]byte
	// lastSent is the last state queued, so a snapshot never repeats it.
	lastSent fsm.State
}

func (h *Hub) newClient(ws *websocket.Conn, acct session.Account, sessionID string) *client {
	c := &client{
		hub:       h,
		sessionID: sessionID,
		account:   acct.Name,
		info:      SocketInfo{Account: acct, SessionHash: session.ShortHash(sessionID)},
	}
	c.conn = NewConn(h.ctx, ws, ConnConfig{
		Socket:      h.sock,
		OnMessage:   c.handle,
		OnClose:     c.closed,
		RequireUTF8: true,
	})
	c.ctx = c.conn.Context()
	return c
}

// closed forgets the socket once its connection is dropped.
func (c *client) closed() {
	h := c.hub
	h.remove(c)
	if h.hooks.SocketClosed != nil {
		h.hooks.SocketClosed(c.info)
	}
}

// applyState records a transition (or a snapshot) with its epoch; older
// news is ignored. Once ready, a newer state is queued, and the closed state
// ends the socket.
func (c *client) applyState(state fsm.State, epoch uint64, reason session.Reason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.haveState && epoch <= c.epoch {
		return
	}
	c.haveState, c.state, c.epoch, c.reason = true, state, epoch, reason
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
		c.conn.Send(m)
	}
	c.early = nil
}

func (c *client) queueStateLocked() {
	if c.state == c.lastSent {
		return
	}
	c.lastSent = c.state
	c.conn.Send(encodeState(c.state, c.reason))
	if c.state == fsm.Closed {
		c.conn.Close(websocket.CloseNormalClosure, ReasonSessionClosed)
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
	c.conn.Send(msg)
}

// closeWith queues a close frame after the messages already queued.
func (c *client) closeWith(code int, reason string) { c.conn.Close(code, reason) }

// handle serves one client message.
func (c *client) handle(typ int, data []byte) {
	h := c.hub
	msg, err := DecodeClientMessage(data)
	if typ != websocket.TextMessage {
		err = sserrors.ErrInvalidParameter
	}
	if err != nil {
		// Any message is activity, even one refused.
		_ = h.mgr.Touch(c.ctx, c.account, c.sessionID)
		c.sendData(encodeError(err))
		return
	}
	switch msg.Type {
	case TypeSpeak:
		if _, err := h.mgr.Command(c.ctx, c.account, c.sessionID, fsm.CmdTask); err != nil {
			c.sendData(encodeError(err))
			return
		}
		if _, _, err := h.Say(c.ctx, c.sessionID, msg.Text); err != nil {
			c.sendData(encodeError(err))
		}
	case TypeInterrupt:
		if _, err := h.mgr.Command(c.ctx, c.account, c.sessionID, fsm.CmdInterrupt); err != nil {
			c.sendData(encodeError(err))
			return
		}
		if err := h.Hush(c.ctx, c.sessionID); err != nil {
			c.sendData(encodeError(err))
		}
	case TypeKeepAlive:
		if _, err := h.mgr.Command(c.ctx, c.account, c.sessionID, fsm.CmdKeepAlive); err != nil {
			c.sendData(encodeError(err))
		}
	}
}
