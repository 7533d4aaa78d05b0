package realtime

import (
	"context"
	"time"

	"github.com/gorilla/websocket"
)

// Relay carries speech commands and socket announcements between the
// server nodes of one service, so that a task or an interrupt received by
// any node reaches the session's realtime socket on whichever node holds
// it, and a socket that opens on one node replaces the session's socket on
// every other. Give every node the same relay (package server/redisrelay is
// one on Redis) in Config.Relay (server.Config.Relay); a single node needs
// none.
//
// With a Relay, a node that receives streaming.task, streaming.interrupt,
// agent.speak or agent.interrupt does not simulate the speech itself: it
// publishes the command, and every node, this one included, applies the
// commands it receives to its own model of each session's speech, in the
// relay's order. Only the node holding the session's socket has anyone to
// tell, so the socket hears each avatar_start_talking and
// avatar_stop_talking once, wherever it is and wherever the command came
// from, and a socket that reopens on another node mid-speech hears the end
// of that speech there.
//
// # Replacing a socket across nodes
//
// Every socket a node opens with a Relay gets a token, the node's name (128
// bits from crypto/rand, drawn when the Hub starts) and the socket's
// number on that node, and once registered the node publishes a
// RelayReplace announcement carrying the session id and that token. The
// rule is that the socket whose announcement comes last in the relay's
// order wins:
//
//   - a socket is announced once its node has heard its own announcement
//     come back through the relay;
//   - a node that hears an announcement for a session whose socket there is
//     announced and has another token closes that socket, exactly as a
//     local reconnect does (1000 "replaced by a new connection", then the
//     SocketClosed hook), and stops routing the session's events to it;
//   - an announcement heard while the node's socket is not yet announced is
//     ignored: it precedes that socket's own in the relay's order, so the
//     node's socket is the newer one and the announcing node closes its
//     socket when it hears this one's;
//   - a node publishes the announcements of one session in the order it
//     registers that session's sockets (it registers the next only once the
//     previous announcement's Publish returned), so its own relay order
//     agrees with its local replacements.
//
// Every node sees the same order, so when sockets of one session open on
// several nodes at the same instant exactly one survives: the one announced
// last. No clock is compared, so skew between nodes does not matter.
//
// A Publish of an announcement that fails (or outlasts the socket's write
// timeout) does not refuse the new socket, which is open already; the
// failure goes to Hooks.AnnounceFailed. That socket then never becomes
// announced: sockets of the session on other nodes live until they drop, as
// they did before cross-node replacement, and it is itself replaced only by
// a later socket on its own node. An announcement whose Publish failed yet
// that reached the relay anyway (the command was in Redis's hands when the
// call gave up) may land late, after a later announcement of its node for
// the session: every node then ignores it, since its number is lower than
// that of the later one, which every node heard first (each node remembers
// the highest number heard for the last 4,096 (session, node) pairs, and
// the tokens of the last 4,096 sockets it replaced or closed itself). A
// late announcement with no later one of its node before it counts where it
// landed.
//
// Implementations are safe for concurrent use by multiple goroutines, and
// must deliver:
//
//   - every message published by any node to every subscription, the
//     publisher's own included (the publisher does not apply its own
//     commands directly);
//   - to each subscription one message at a time, and in one order that is
//     the same for every subscription (the order of publication, for
//     example a single Redis channel: a message whose Publish returned
//     comes before any message published after that), so that every node
//     agrees on which task cuts which short and which socket was announced
//     last;
//   - each message at most once (a transport that may repeat a message, such
//     as a client that retries a publication whose reply was lost, must
//     drop the repeat).
//
// A message lost (a subscription that reconnects) costs that node's model
// the command: a speech not started there, or not cut short until it ends,
// or a socket there not replaced until it drops.
type Relay interface {
	// Publish sends msg about the session to every subscription of every
	// node. An error is answered to the caller as it is: return a catalog
	// error (503 with code 400558 and a Retry-After when the backend is
	// unreachable).
	Publish(ctx context.Context, sessionID string, msg RelayMessage) error
	// Subscribe calls fn for every message published from now on, until
	// cancel is called; cancel waits for a call of fn in progress and must
	// not be called from fn. fn must be fast and must not block.
	Subscribe(fn func(sessionID string, msg RelayMessage)) (cancel func(), err error)
}

// RelayKind says what a RelayMessage asks. It is a plain value.
type RelayKind string

// The relay's commands.
const (
	// RelaySpeak starts task RelayMessage.TaskID of RelayMessage.Duration,
	// cutting short the session's speech in progress.
	RelaySpeak RelayKind = "speak"
	// RelayInterrupt cuts the session's speech short; it does nothing when
	// the avatar is silent.
	RelayInterrupt RelayKind = "interrupt"
	// RelayReplace announces that the socket RelayMessage.Socket is now the
	// session's realtime socket: every node closes the session's announced
	// socket with another token (see [Relay]).
	RelayReplace RelayKind = "replace"
)

// RelayMessage is one command carried by a Relay: a speech command or a
// socket announcement. For a task, the node that receives it computes its
// id and duration, answers them to the caller and passes them along, so
// that the socket's events carry what the caller was answered. It is a
// plain value, safe to copy.
type RelayMessage struct {
	// Kind is RelaySpeak, RelayInterrupt or RelayReplace; a node ignores
	// other kinds.
	Kind RelayKind
	// TaskID is the task's id (RelaySpeak only).
	TaskID string
	// Duration is how long the avatar speaks the task (RelaySpeak only).
	Duration time.Duration
	// Socket is the announced socket's token (RelayReplace only): a string
	// that a relay carries as it is and, like the session id, never logs.
	Socket string
}

// Say starts a task for the session, as streaming.task and agent.speak do:
// here, or with a Relay on every node. It returns the task's id and how
// long the avatar speaks text. The caller has checked that the session is
// connected. With a Relay, an error is the Relay's Publish error and
// nothing is spoken.
func (h *Hub) Say(ctx context.Context, sessionID, text string) (taskID string, d time.Duration, err error) {
	if h.relay == nil {
		taskID, d = h.speech.speak(sessionID, text)
		return taskID, d, nil
	}
	taskID, d = newTaskID(), max(h.speech.duration(text), 0)
	err = h.relay.Publish(ctx, sessionID, RelayMessage{Kind: RelaySpeak, TaskID: taskID, Duration: d})
	return taskID, d, err
}

// Hush interrupts the session's speech, as streaming.interrupt and
// agent.interrupt do: here, or with a Relay on every node. It does nothing
// when the avatar is silent.
func (h *Hub) Hush(ctx context.Context, sessionID string) error {
	if h.relay == nil {
		h.speech.interrupt(sessionID)
		return nil
	}
	return h.relay.Publish(ctx, sessionID, RelayMessage{Kind: RelayInterrupt})
}

// onRelay applies a command heard on the relay to this node's speech (the
// events reach the session's socket if it is on this node), or an
// announcement to this node's socket for the session. Malformed commands
// are ignored.
func (h *Hub) onRelay(sessionID string, msg RelayMessage) {
	if sessionID == "" {
		return
	}
	switch msg.Kind {
	case RelaySpeak:
		if msg.TaskID != "" {
			h.speech.start(sessionID, msg.TaskID, max(msg.Duration, 0))
		}
	case RelayInterrupt:
		h.speech.interrupt(sessionID)
	case RelayReplace:
		if msg.Socket != "" {
			if old := h.announced(sessionID, msg.Socket); old != nil {
				old.closeWith(websocket.CloseNormalClosure, ReasonReplaced)
			}
		}
	}
}

// announced applies an announcement heard on the relay: token is now the
// session's socket. The session's socket here is marked announced when it
// is token's socket; otherwise, if it was announced already, it is
// forgotten and returned, for the caller to close. A socket not yet
// announced is newer than the announcement and stays (see [Relay]); a
// stale announcement (see [socketOrder.hear]) closes nothing.
func (h *Hub) announced(sessionID, token string) (old *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	stale := h.order.hear(sessionID, token)
	c := h.bySession[sessionID]
	if c == nil {
		return nil
	}
	if c.token == token {
		h.order.markAnnounced(token)
		return nil
	}
	if stale || !h.order.isAnnounced(c.token) {
		return nil
	}
	delete(h.bySession, sessionID)
	return c
}

// announce publishes c's RelayReplace, within ctx and c's life. A failure
// goes to Hooks.AnnounceFailed: the socket is open already and stays open
// (see [Relay] for what a lost announcement costs).
func (h *Hub) announce(ctx context.Context, c *client) {
	// The session's turn is held meanwhile: bound it by the socket's write
	// timeout, so that a stalled relay does not hold up the session's next
	// socket on this node for the client's whole retry budget.
	ctx, cancel := context.WithTimeout(ctx, h.sock.WriteTimeout)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()
	err := h.relay.Publish(ctx, c.sessionID, RelayMessage{Kind: RelayReplace, Socket: c.token})
	if err != nil && h.hooks.AnnounceFailed != nil {
		h.hooks.AnnounceFailed(AnnounceFailure{SocketInfo: c.info, Err: err})
	}
}
