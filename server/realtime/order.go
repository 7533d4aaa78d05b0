package realtime

import (
	"crypto/rand"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// socketOrder decides, on a node that shares its sessions with others
// through a Relay, which of a session's sockets survives when sockets open
// on several nodes: the one announced last in the relay's order (see
// [Relay]). A single node has none. It is safe for concurrent use.
type socketOrder struct {
	// node names this node in its sockets' tokens, and seq numbers them.
	node string
	seq  atomic.Uint64

	mu sync.Mutex
	// turns serialises, per session, registering a socket and publishing
	// its announcement.
	turns map[string]*turn
	// announced holds the tokens of this node's live sockets whose own
	// announcement came back through the relay.
	announced map[string]struct{}
	// retired holds the tokens of this node's last orderMemory sockets
	// that were replaced or closed: an announcement of one of them that
	// reaches the relay late (its Publish timed out, yet the command was
	// already in Redis's hands) is stale and must not close the session's
	// newer socket.
	retired *boundedMap[string, struct{}]
	// heard holds, for the last orderMemory (session, node) pairs announced
	// on the relay, the highest sequence number heard.
	heard *boundedMap[heardKey, uint64]
}

// orderMemory bounds what a node remembers of past announcements: a late
// announcement arrives within a Publish timeout, while a node closes far
// fewer sockets than this in that time.
const orderMemory = 4096

// heardKey is one node's announcements of one session.
type heardKey struct{ session, node string }

// turn is one session's lock in socketOrder.turns (a token in a channel of
// one), counted so that the map holds only sessions someone holds or waits
// for.
type turn struct {
	held chan struct{}
	refs int // guarded by socketOrder.mu
}

func newSocketOrder() *socketOrder {
	return &socketOrder{
		node:      rand.Text(),
		turns:     make(map[string]*turn),
		announced: make(map[string]struct{}),
		retired:   newBoundedMap[string, struct{}](orderMemory),
		heard:     newBoundedMap[heardKey, uint64](orderMemory),
	}
}

// newToken returns a token for a new socket of this node: the node's name
// and the next number of this node, "node.seq" (seq in base 36). Taken in
// the session's turn, the numbers of one session's sockets on this node
// grow in the order they are registered and announced.
func (o *socketOrder) newToken() string {
	return o.node + "." + strconv.FormatUint(o.seq.Add(1), 36)
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

// lockSession waits for the session's turn and returns the function that
// ends it. A node registers a session's socket and publishes its
// announcement in one turn, so that the relay carries a node's
// announcements of one session in the order the node registered them.
func (o *socketOrder) lockSession(sessionID string) (unlock func()) {
	o.mu.Lock()
	t := o.turns[sessionID]
	if t == nil {
		t = &turn{held: make(chan struct{}, 1)}
		o.turns[sessionID] = t
	}
	t.refs++
	o.mu.Unlock()
	t.held <- struct{}{}
	return func() {
		<-t.held
		o.mu.Lock()
		defer o.mu.Unlock()
		if t.refs--; t.refs == 0 {
			delete(o.turns, sessionID)
		}
	}
}

// hear records an announcement of token for the session and reports
// whether it is stale: it comes after a later announcement of the same node
// for the session (its Publish gave up yet it reached the relay late), or
// it announces a socket this node replaced or closed itself.
func (o *socketOrder) hear(sessionID, token string) (stale bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.retired.get(token); ok {
		stale = true
	}
	node, seq, ok := parseToken(token)
	if !ok {
		return stale
	}
	k := heardKey{sessionID, node}
	if last, seen := o.heard.get(k); seen && seq <= last {
		return true
	}
	o.heard.put(k, seq)
	return stale
}

// markAnnounced records that the socket of token heard its own
// announcement come back.
func (o *socketOrder) markAnnounced(token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.announced[token] = struct{}{}
}

// isAnnounced reports whether the socket of token was announced.
func (o *socketOrder) isAnnounced(token string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.announced[token]
	return ok
}

// retire remembers the token of a socket of this node that is gone or
// going.
func (o *socketOrder) retire(token string) {
	if token == "" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.announced, token)
	if _, ok := o.retired.get(token); !ok {
		o.retired.put(token, struct{}{})
	}
}

// boundedMap is a map that keeps its last n keys: putting a new key when it
// holds n forgets the oldest, in O(1). It is not safe for concurrent use.
type boundedMap[K comparable, V any] struct {
	m    map[K]V
	ring []K // keys in insertion order, the oldest at next once full
	next int
}

func newBoundedMap[K comparable, V any](n int) *boundedMap[K, V] {
	return &boundedMap[K, V]{m: make(map[K]V, n), ring: make([]K, 0, n)}
}

func (b *boundedMap[K, V]) get(k K) (V, bool) {
	v, ok := b.m[k]
	return v, ok
}

// put sets k to v; a key already held keeps its place in the order.
func (b *boundedMap[K, V]) put(k K, v V) {
	if _, ok := b.m[k]; ok {
		b.m[k] = v
		return
	}
	if len(b.ring) < cap(b.ring) {
		b.ring = append(b.ring, k)
	} else {
		delete(b.m, b.ring[b.next])
		b.ring[b.next] = k
		b.next = (b.next + 1) % len(b.ring)
	}
	b.m[k] = v
}

func (b *boundedMap[K, V]) len() int { return len(b.m) }
