package realtime

import (
	"time"

	"github.com/streamsession/streamsession/session"
)

// Config configures a [Hub]. Manager is required; every other zero field
// takes the documented default. A Config is a plain value; New copies what
// it needs.
type Config struct {
	// Manager runs the sessions: the Hub subscribes to its transitions and
	// sends it the commands clients send on their sockets. Required. The
	// Hub does not close it.
	Manager *session.Manager
	// Socket tunes every socket.
	Socket SocketConfig
	// Clock times simulated speech. The default is the real clock.
	Clock Clock
	// TaskDuration says how long the avatar speaks a text. The default is
	// DefaultTaskDuration.
	TaskDuration func(text string) time.Duration
	// Relay carries tasks, interrupts and socket announcements between the
	// nodes of one service (see [Relay]). The default (nil) simulates speech
	// on this node, which is right for a single node. New subscribes to it;
	// Shutdown and Close cancel the subscription.
	Relay Relay
	// Hooks observe the sockets; nil hooks are skipped.
	Hooks Hooks
}

// SocketConfig tunes the realtime socket. Zero fields take the documented
// defaults.
type SocketConfig struct {
	// MaxMessageBytes is the largest client message; a larger one closes
	// the socket with 1009 and ReasonTooBig, unread past the bound. The
	// default is 64 KiB.
	MaxMessageBytes int64
	// SendQueue is how many messages may wait for a slow client before it
	// is disconnected. The default is 64.
	SendQueue int
	// PingInterval is how often the server pings. The default is 20 s.
	PingInterval time.Duration
	// PongTimeout is how long the server waits for any frame (a pong
	// included) before it drops the socket. The default is 3 × PingInterval
	// / 2 (30 s).
	PongTimeout time.Duration
	// WriteTimeout bounds each write. The default is 10 s.
	WriteTimeout time.Duration
	// CloseGrace is how long the server waits for the client's close frame
	// after sending its own. The default is 2 s.
	CloseGrace time.Duration
	// MessageRate bounds the messages a client sends, per second, with
	// MessageBurst at once, its ping frames included: a client over it is
	// closed with 1008 and a reason saying so, and what it sent past the
	// bound is not served (a ping past it gets no pong). The
	// defaults are 10 a second and a burst of 20 (a person talking to an
	// avatar sends far fewer).
	MessageRate  float64
	MessageBurst int
}

// WithDefaults returns c with every zero or negative field set to its
// documented default (64 KiB messages, a queue of 64, a ping every 20 s
// answered within 30 s, 10 s writes, a 2 s close grace, 10 messages a
// second in bursts of 20). Every surface that runs sockets applies it.
func (c SocketConfig) WithDefaults() SocketConfig {
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 64
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = c.PingInterval * 3 / 2
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.CloseGrace <= 0 {
		c.CloseGrace = 2 * time.Second
	}
	if c.MessageRate <= 0 {
		c.MessageRate = 10
	}
	if c.MessageBurst <= 0 {
		c.MessageBurst = 20
	}
	return c
}

// Hooks let a caller observe the sockets (for metrics and logs) without the
// library logging. Hooks are called synchronously from socket goroutines:
// they must be fast, must not block and must be safe for concurrent use.
// They never receive a token or a raw session id.
type Hooks struct {
	// SocketOpened is called when a realtime socket is established.
	SocketOpened func(SocketInfo)
	// SocketClosed is called once for every socket SocketOpened reported.
	SocketClosed func(SocketInfo)
	// AnnounceFailed is called, with a Relay, when a new socket's
	// announcement could not be published: the socket stays open, but the
	// session's sockets on other nodes are not replaced by it and live
	// until they drop (see [Relay]).
	AnnounceFailed func(AnnounceFailure)
}

// SocketInfo describes a realtime socket to hooks. It is a plain value.
type SocketInfo struct {
	// Account is the session's account, as the caller of [Hub.Serve]
	// resolved it.
	Account session.Account
	// SessionHash is session.ShortHash of the session id.
	SessionHash string
}

// AnnounceFailure describes to hooks a socket whose announcement the Relay
// did not take. It is a plain value.
type AnnounceFailure struct {
	SocketInfo
	// Err is the Relay's error.
	Err error
}
