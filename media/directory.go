package media

import (
	"context"
	"sync"
	"time"
)

// Directory records which node holds each session's peer, for a service of
// several nodes: a peer lives on the node that made its offer, and a
// streaming.start or streaming.ice that reaches another node is forwarded
// to it (see server.Config.Media). Node is the holder's base URL as the
// other nodes reach it. Implementations are safe for concurrent use by
// multiple goroutines; package media/redisdir keeps one in Redis.
type Directory interface {
	// Claim records node as the holder of the session's peer for ttl (the
	// record Holder reads), and the session among node's until Release.
	Claim(ctx context.Context, h Held, ttl time.Duration) error
	// Holder returns the node holding the session's peer, or "" when none
	// is recorded (a session without media, or one whose record expired).
	Holder(ctx context.Context, sessionID string) (string, error)
	// Release forgets the record if node still holds it, and the session
	// among node's.
	Release(ctx context.Context, sessionID, node string) error
	// Beat records that node is alive for ttl.
	Beat(ctx context.Context, node string, ttl time.Duration) error
	// Orphans takes the sessions of every node whose last Beat expired (or
	// that never beat): each is returned to one caller only, and forgotten.
	Orphans(ctx context.Context) ([]Held, error)
}

// Held is a session whose peer a node holds. It is a plain value.
type Held struct {
	SessionID string
	Account   string
	Node      string
}

// MemoryDirectory is a Directory in this process, for tests and for nodes
// sharing one process. The zero value is ready; it is safe for concurrent
// use by multiple goroutines. Expired records are dropped when read.
type MemoryDirectory struct {
	// Now tells the time of the expiries. The default is time.Now.
	Now func() time.Time

	mu      sync.Mutex
	holders map[string]heldBy
	nodes   map[string]map[string]Held // node → session id → held
	alive   map[string]time.Time       // node → end of its last Beat
}

type heldBy struct {
	node    string
	expires time.Time
}

// Claim records node for ttl.
func (d *MemoryDirectory) Claim(_ context.Context, h Held, ttl time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.holders == nil {
		d.holders = make(map[string]heldBy)
	}
	if d.nodes == nil {
		d.nodes = make(map[string]map[string]Held)
	}
	d.holders[h.SessionID] = heldBy{node: h.Node, expires: d.now().Add(ttl)}
	if d.nodes[h.Node] == nil {
		d.nodes[h.Node] = make(map[string]Held)
	}
	d.nodes[h.Node][h.SessionID] = h
	return nil
}

// Beat records that node is alive for ttl.
func (d *MemoryDirectory) Beat(_ context.Context, node string, ttl time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.alive == nil {
		d.alive = make(map[string]time.Time)
	}
	d.alive[node] = d.now().Add(ttl)
	return nil
}

// Orphans takes the sessions of the nodes not alive.
func (d *MemoryDirectory) Orphans(context.Context) ([]Held, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Held
	now := d.now()
	for node, held := range d.nodes {
		if now.Before(d.alive[node]) {
			continue
		}
		for _, h := range held {
			out = append(out, h)
		}
		delete(d.nodes, node)
	}
	return out, nil
}

// Holder returns the node recorded, or "".
func (d *MemoryDirectory) Holder(_ context.Context, sessionID string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.holders[sessionID]
	if !ok {
		return "", nil
	}
	if !d.now().Before(h.expires) {
		delete(d.holders, sessionID)
		return "", nil
	}
	return h.node, nil
}

// Release forgets the record if node holds it.
func (d *MemoryDirectory) Release(_ context.Context, sessionID, node string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.holders[sessionID].node == node {
		delete(d.holders, sessionID)
	}
	delete(d.nodes[node], sessionID)
	return nil
}

func (d *MemoryDirectory) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}
