// Package redisrelay is a realtime.Relay on Redis pub/sub: it carries the
// speech commands (a task, an interrupt) and the socket announcements of
// the server nodes of one service to every node, so that the realtime
// socket of a session hears avatar_start_talking and avatar_stop_talking
// of every task wherever the task was sent and wherever the socket is, and
// a socket that reconnects through another node replaces the old one there
// (closed with 1000 "replaced by a new connection").
//
// Start with New (the redis.UniversalClient the node's other Redis
// backends use, and a Config whose zero value is usable), give the Relay
// to server.Config.Relay, and Close it after the server's Shutdown.
//
// # How
//
// Every node publishes on, and subscribes to, one channel,
// "{Prefix}:relay", under the hash tag of the other Redis backends' keys
// (session/redisstore, limits/redislimiter, server/redistokens). A single
// channel gives every subscriber the messages in one order, the order in
// which Redis received them: every node applies the same commands in the
// same order, so they agree on which task cuts which short and on which
// socket of a session was announced last (the one that stays open). A
// message is a small JSON object: a nonce, the session id, the command, for
// a task its id and duration (decided by the node that answered the task),
// and for an announcement the socket's token.
//
// Each Publish is one PUBLISH, one round trip. go-redis retries a command
// whose reply was lost, so a message may reach Redis twice: every message
// carries a nonce (this Relay's random id and a counter) and each
// subscription drops a nonce it has seen among the last RecentNonces
// messages. Pub/sub delivers at most once: a subscription that reconnects
// (Redis restarted, the network cut) loses the messages published
// meanwhile; the speech it missed is simply not modelled on that node (see
// realtime.Relay).
//
// # Redis Cluster
//
// PUBLISH names no key, so a cluster client would send each one to any
// master (go-redis v9 takes them in turn), and that master forwards it to
// the others over the cluster bus: the messages of one node, sent through
// different masters, could reach the subscribers out of order (tested: they
// did). Publish therefore routes PUBLISH by the slot of the channel's name,
// as go-redis routes the subscriptions: every message and every subscriber
// meet on the one master of that slot, which keeps the single order. (On a
// single redis-server the routing changes nothing.) While the slot moves (a
// failover, a resharding) publishers and subscribers may briefly disagree on
// its master, and messages of that moment may be lost or reordered.
//
// # Failures
//
// A Publish that cannot reach Redis, or whose context ends first, fails
// with HTTP 503, code 400558 and a Retry-After (errors.Is still finds the
// cause), which the server answers to its caller as it is.
//
// # Concurrency
//
// A Relay is safe for concurrent use by multiple goroutines. Each
// subscription runs one goroutine (plus those of go-redis's pub/sub
// connection) that calls its function one message at a time; its cancel
// function, or Close, stops it and waits for it.
package redisrelay

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server/realtime"
)

// Defaults of Config's zero values, and the duplicate filter's window.
const (
	// DefaultPrefix is the hash tag of the channel, the one the other Redis
	// backends use by default.
	DefaultPrefix = "streamsession"
	// DefaultSubscribeWait bounds how long Subscribe waits for Redis to
	// confirm the subscription.
	DefaultSubscribeWait = 3 * time.Second
	// RecentNonces is how many of the latest messages each subscription
	// remembers to drop a repeated publication.
	RecentNonces = 4096
)

// channelBuffer is how many messages go-redis holds for a subscription
// whose function is busy.
const channelBuffer = 4096

// ErrClosed is the cause of the errors of a Relay used after Close.
var ErrClosed = errors.New("redisrelay: relay closed")

// Config configures a Relay. Zero fields take the documented defaults.
// Every node of a service must use the same Prefix. It is a plain value.
type Config struct {
	// Prefix is the hash tag of the channel ("{Prefix}:relay"). It must
	// not contain '{' or '}'. The default is DefaultPrefix.
	Prefix string
	// SubscribeWait bounds how long Subscribe waits for Redis to confirm
	// the subscription; past it the subscription goes on in the
	// background. The default is DefaultSubscribeWait (3 s).
	SubscribeWait time.Duration
}

// Relay is a realtime.Relay on a Redis channel. It is safe for concurrent
// use by multiple goroutines.
type Relay struct {
	client  redis.UniversalClient
	channel string
	wait    time.Duration
	id      [8]byte       // random: nonces of different Relays never collide
	seq     atomic.Uint64 // the nonce counter

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
}

var _ realtime.Relay = (*Relay)(nil)

// New returns a Relay on client. It does not contact Redis. The client
// stays the caller's; create it with ContextTimeoutEnabled so that Publish
// returns by its context's deadline. An invalid cfg is a 400175 error.
func New(client redis.UniversalClient, cfg Config) (*Relay, error) {
	if client == nil {
		return nil, invalid("nil client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, invalid("Prefix %q contains a brace", cfg.Prefix)
	}
	if cfg.SubscribeWait < 0 {
		return nil, invalid("negative SubscribeWait")
	}
	if cfg.SubscribeWait == 0 {
		cfg.SubscribeWait = DefaultSubscribeWait
	}
	r := &Relay{
		client:  client,
		channel: "{" + cfg.Prefix + "}:relay",
		wait:    cfg.SubscribeWait,
		subs:    make(map[*subscription]struct{}),
	}
	rand.Read(r.id[:])
	return r, nil
}

func invalid(format string, args ...any) error {
	return sserrors.ErrInvalidParameter.WithCause(fmt.Errorf("redisrelay: "+format, args...))
}

// unavailable is a Redis failure: 503/400558 with a Retry-After, which the
// server answers as it is.
func unavailable(op string, err error) error {
	return sserrors.ErrBackendUnavailable.
		WithCause(fmt.Errorf("redisrelay: %s: %w", op, err))
}

// payload is a message on the channel.
type payload struct {
	Nonce    string             `json:"n"`
	Session  string             `json:"s"`
	Kind     realtime.RelayKind `json:"k"`
	Task     string             `json:"t,omitempty"`
	Duration int64              `json:"d,omitempty"` // nanoseconds
	Socket   string             `json:"o,omitempty"` // the announced socket's token
}

// Publish implements realtime.Relay: one PUBLISH on the channel. An empty
// session id is a 400175 error; a Redis failure, or a Relay closed, is
// 503/400558.
func (r *Relay) Publish(ctx context.Context, sessionID string, msg realtime.RelayMessage) error {
	if sessionID == "" {
		return invalid("Publish: empty session id")
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return unavailable("publish", ErrClosed)
	}
	var nonce [16]byte
	copy(nonce[:8], r.id[:])
	binary.BigEndian.PutUint64(nonce[8:], r.seq.Add(1))
	data, err := json.Marshal(payload{
		Nonce: hex.EncodeToString(nonce[:]), Session: sessionID,
		Kind: msg.Kind, Task: msg.TaskID, Duration: int64(msg.Duration), Socket: msg.Socket,
	})
	if err != nil {
		return invalid("Publish: %v", err)
	}
	if err := ctx.Err(); err != nil {
		return unavailable("publish", err)
	}
	// Routed by the channel's slot: see "Redis Cluster" in the package doc.
	cmd := redis.NewIntCmd(ctx, "publish", r.channel, data)
	cmd.SetFirstKeyPos(1)
	if err := r.client.Process(ctx, cmd); err != nil {
		return unavailable("publish", err)
	}
	return nil
}

// Subscribe implements realtime.Relay: it subscribes to the channel and calls
// fn for each message, from the subscription's goroutine, one at a time in
// the channel's order, dropping malformed and repeated messages. It waits
// up to Config.SubscribeWait for Redis to confirm the subscription. cancel
// stops the subscription and waits for its goroutine; calling it again does
// nothing. It fails with ErrClosed after Close.
func (r *Relay) Subscribe(fn func(sessionID string, msg realtime.RelayMessage)) (cancel func(), err error) {
	if fn == nil {
		return nil, errors.New("redisrelay: Subscribe: nil function")
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	sub := &subscription{
		ps:   r.client.Subscribe(context.Background(), r.channel),
		fn:   fn,
		seen: newRecent(RecentNonces),
		done: make(chan struct{}),
	}
	r.subs[sub] = struct{}{}
	r.mu.Unlock()

	ready := make(chan struct{})
	go sub.listen(ready)
	t := time.NewTimer(r.wait)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
	}
	return func() {
		r.mu.Lock()
		delete(r.subs, sub)
		r.mu.Unlock()
		sub.close()
	}, nil
}

// Close cancels the subscriptions still open and makes later calls fail.
// It does not close the client. Calling it again does nothing.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	subs := r.subs
	r.subs = make(map[*subscription]struct{})
	r.mu.Unlock()
	var errs []error
	for sub := range subs {
		errs = append(errs, sub.close())
	}
	return errors.Join(errs...)
}

// subscription is one Subscribe: a pub/sub connection and the goroutine
// that reads it.
type subscription struct {
	ps   *redis.PubSub
	fn   func(string, realtime.RelayMessage)
	seen *recent // used by the listener only
	done chan struct{}
	once sync.Once
	err  error
}

// listen calls fn for each message until the pub/sub connection closes.
func (s *subscription) listen(ready chan struct{}) {
	defer close(s.done)
	subscribed := false
	for m := range s.ps.ChannelWithSubscriptions(redis.WithChannelSize(channelBuffer)) {
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && !subscribed {
				subscribed = true
				close(ready)
			}
		case *redis.Message:
			if id, msg, nonce, ok := decode(m.Payload); ok && s.seen.add(nonce) {
				s.fn(id, msg)
			}
		}
	}
}

// close closes the connection and waits for the listener, once.
func (s *subscription) close() error {
	s.once.Do(func() {
		s.err = s.ps.Close()
		<-s.done
	})
	return s.err
}

// decode reads a payload; ok is false for anything malformed.
func decode(data string) (sessionID string, msg realtime.RelayMessage, nonce string, ok bool) {
	var p payload
	if err := json.Unmarshal([]byte(data), &p); err != nil || p.Nonce == "" || p.Session == "" || p.Kind == "" {
		return "", realtime.RelayMessage{}, "", false
	}
	return p.Session, realtime.RelayMessage{
		Kind: p.Kind, TaskID: p.Task, Duration: time.Duration(p.Duration), Socket: p.Socket,
	}, p.Nonce, true
}

// recent remembers the last nonces seen, up to a bound.
type recent struct {
	ring []string
	next int
	set  map[string]struct{}
}

func newRecent(n int) *recent {
	return &recent{ring: make([]string, n), set: make(map[string]struct{}, n)}
}

// add records nonce and reports whether it is new.
func (r *recent) add(nonce string) bool {
	if _, dup := r.set[nonce]; dup {
		return false
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = nonce
	r.set[nonce] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
	return true
}
