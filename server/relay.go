package server

import (
	"context"
	"time"
)

// Relay carries speech commands between the server nodes of one service,
// so that a task or an interrupt received by any node reaches the session's
// realtime socket on whichever node holds it. Give every node the same
// relay (package server/redisrelay is one on Redis) in Config.Relay; a
// single node needs none.
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
// Implementations are safe for concurrent use by multiple goroutines, and
// must deliver:
//
//   - every message published by any node to every subscription, the
//     publisher's own included (the publisher does not apply its own
//     commands directly);
//   - to each subscription one message at a time, and in one order that is
//     the same for every subscription (the order of publication, for
//     example a single Redis channel), so that every node agrees on which
//     task cuts which short;
//   - each message at most once (a transport that may repeat a message, such
//     as a client that retries a publication whose reply was lost, must
//     drop the repeat).
//
// A message lost (a subscription that reconnects) costs that node's model
// the command: a speech not started there, or not cut short until it ends.
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
)

// RelayMessage is one speech command carried by a Relay. The node that
// receives the task computes its id and duration, answers them to the
// caller and passes them along, so that the socket's events carry what the
// caller was answered. It is a plain value, safe to copy.
type RelayMessage struct {
	// Kind is RelaySpeak or RelayInterrupt; a node ignores other kinds.
	Kind RelayKind
	// TaskID is the task's id (RelaySpeak only).
	TaskID string
	// Duration is how long the avatar speaks the task (RelaySpeak only).
	Duration time.Duration
}

// say starts a task for the session: here, or with a Relay on every node.
// It returns the task's id and duration.
func (s *Server) say(ctx context.Context, sessionID, text string) (string, time.Duration, error) {
	if s.relay == nil {
		id, d := s.speech.speak(sessionID, text)
		return id, d, nil
	}
	id, d := newTaskID(), max(s.speech.duration(text), 0)
	err := s.relay.Publish(ctx, sessionID, RelayMessage{Kind: RelaySpeak, TaskID: id, Duration: d})
	return id, d, err
}

// hush interrupts the session's speech: here, or with a Relay on every
// node.
func (s *Server) hush(ctx context.Context, sessionID string) error {
	if s.relay == nil {
		s.speech.interrupt(sessionID)
		return nil
	}
	return s.relay.Publish(ctx, sessionID, RelayMessage{Kind: RelayInterrupt})
}

// onRelay applies a command heard on the relay to this node's speech; the
// events reach the session's socket if it is on this node. Malformed
// commands are ignored.
func (s *Server) onRelay(sessionID string, msg RelayMessage) {
	if sessionID == "" {
		return
	}
	switch msg.Kind {
	case RelaySpeak:
		if msg.TaskID != "" {
			s.speech.start(sessionID, msg.TaskID, max(msg.Duration, 0))
		}
	case RelayInterrupt:
		s.speech.interrupt(sessionID)
	}
}
