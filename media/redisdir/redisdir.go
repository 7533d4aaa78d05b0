// Package redisdir is a media.Directory in Redis: one key per session
// holding the base URL of the node that holds its peer, with an expiry
// (PREFIX holder:ID); per node, a hash of the sessions it holds, session id
// to account (PREFIX node:NODE), and a key while it is alive (PREFIX
// alive:NODE); and the set of the nodes (PREFIX nodes). Each command and
// script touches one key, so Redis Cluster needs no hash tag; it takes a redis.UniversalClient, so Sentinel
// and Cluster need nothing of it.
package redisdir

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/media"
)

// DefaultPrefix starts every key.
const DefaultPrefix = "streamsession:media:"

// Config configures a Directory. The zero value takes the defaults.
type Config struct {
	// Prefix starts every key. The default is DefaultPrefix.
	Prefix string
}

// Directory is a media.Directory in Redis. It is safe for concurrent use by
// multiple goroutines.
type Directory struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a Directory on rdb.
func New(rdb redis.UniversalClient, cfg Config) *Directory {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	return &Directory{rdb: rdb, prefix: cfg.Prefix}
}

// Claim records node for ttl (SET with PX) and adds the session to node's
// hash.
func (d *Directory) Claim(ctx context.Context, h media.Held, ttl time.Duration) error {
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, d.prefix+"holder:"+h.SessionID, h.Node, ttl)
		p.HSet(ctx, d.prefix+"node:"+h.Node, h.SessionID, h.Account)
		p.SAdd(ctx, d.prefix+"nodes", h.Node)
		return nil
	})
	return err
}

// Holder returns the node recorded, or "".
func (d *Directory) Holder(ctx context.Context, sessionID string) (string, error) {
	node, err := d.rdb.Get(ctx, d.prefix+"holder:"+sessionID).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return node, err
}

// release deletes the key only while it names the releasing node.
var release = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Release forgets the record if node holds it, and the session in node's
// hash.
func (d *Directory) Release(ctx context.Context, sessionID, node string) error {
	if err := release.Run(ctx, d.rdb, []string{d.prefix + "holder:" + sessionID}, node).Err(); err != nil {
		return err
	}
	return d.rdb.HDel(ctx, d.prefix+"node:"+node, sessionID).Err()
}

// Beat sets node's alive key for ttl.
func (d *Directory) Beat(ctx context.Context, node string, ttl time.Duration) error {
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, d.prefix+"alive:"+node, "1", ttl)
		p.SAdd(ctx, d.prefix+"nodes", node)
		return nil
	})
	return err
}

// take returns a hash's fields and values and deletes it, at once: one
// caller takes a dead node's sessions.
var take = redis.NewScript(`local all = redis.call("HGETALL", KEYS[1]) redis.call("DEL", KEYS[1]) return all`)

// Orphans takes the sessions of every node without an alive key (its hash,
// read and deleted by one script); such a node leaves the set of nodes
// until it beats again.
func (d *Directory) Orphans(ctx context.Context) ([]media.Held, error) {
	nodes, err := d.rdb.SMembers(ctx, d.prefix+"nodes").Result()
	if err != nil {
		return nil, err
	}
	var out []media.Held
	for _, node := range nodes {
		n, err := d.rdb.Exists(ctx, d.prefix+"alive:"+node).Result()
		if err != nil {
			return out, err
		}
		if n == 1 {
			continue
		}
		all, err := take.Run(ctx, d.rdb, []string{d.prefix + "node:" + node}).StringSlice()
		if err != nil {
			return out, err
		}
		for i := 0; i+1 < len(all); i += 2 {
			out = append(out, media.Held{SessionID: all[i], Account: all[i+1], Node: node})
		}
		if err := d.rdb.SRem(ctx, d.prefix+"nodes", node).Err(); err != nil {
			return out, err
		}
	}
	return out, nil
}
