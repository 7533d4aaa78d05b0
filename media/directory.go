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
	// Claim records node as the holder of the session's peer for ttl.
	Claim(ctx context.Context, sessionID, node string, ttl time.Duration) error
	// Holder returns the node holding the session's peer, or "" when none
	// is recorded (a session without media, or one whose record expired).
	Holder(ctx context.Context, sessionID string) (string, error)
	// Release forgets the record if node still holds it.
	Release(ctx context.Context, sessionID, node string) error
}

// MemoryDirectory is a Directory in this process, for tests and for nodes
// sharing one process. The zero value is ready; it is safe for concurrent
// use by multiple goroutines. Expired records are dropped when read.
type MemoryDirectory struct {
	// Now tells the time of the expiries. The default is time.Now.
	Now func() time.Time

	mu      sync.Mutex
	holders map[string]heldBy
}

type heldBy struct {
	node    string
	expires time.Time
}

// Claim records node for ttl.
func (d *MemoryDirectory) Claim(_ context.Context, sessionID, node string, ttl time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.holders == nil {
		d.holders = make(map[string]heldBy)
	}
	d.holders[sessionID] = heldBy{node: node, expires: d.now().Add(ttl)}
	return nil
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
	return nil
}

func (d *MemoryDirectory) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}
