// Package redisdir is a media.Directory in Redis: one key per session
// holding the base URL of the node that holds its peer, with an expiry
// (PREFIX holder:ID); per node, a set of the sessions it holds (PREFIX
// node:NODE) and a key while it is alive (PREFIX alive:NODE); and the set
// of the nodes (PREFIX nodes). Each command touches one key, so Redis
// Cluster needs no hash tag; it takes a redis.UniversalClient, so Sentinel
// and Cluster need nothing of it.
package redisdir

import (
	"context"
	"errors"
	"strings"
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

// sep separates the account and the session id in a node's set; neither
// contains it.
const sep = "\x00"

// Claim records node for ttl (SET with PX) and adds the session to node's
// set.
func (d *Directory) Claim(ctx context.Context, h media.Held, ttl time.Duration) error {
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, d.prefix+"holder:"+h.SessionID, h.Node, ttl)
		p.SAdd(ctx, d.prefix+"node:"+h.Node, h.Account+sep+h.SessionID)
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
// set.
func (d *Directory) Release(ctx context.Context, sessionID, node string) error {
	if err := release.Run(ctx, d.rdb, []string{d.prefix + "holder:" + sessionID}, node).Err(); err != nil {
		return err
	}
	members, err := d.rdb.SMembers(ctx, d.prefix+"node:"+node).Result()
	if err != nil {
		return err
	}
	for _, m := range members {
		if strings.HasSuffix(m, sep+sessionID) {
			return d.rdb.SRem(ctx, d.prefix+"node:"+node, m).Err()
		}
	}
	return nil
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

// maxOrphans bounds the sessions one SPOP takes from a dead node's set.
const maxOrphans = 10000

// Orphans takes (SPOP) the sessions of every node without an alive key;
// a node whose set is empty leaves the set of nodes.
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
		members, err := d.rdb.SPopN(ctx, d.prefix+"node:"+node, maxOrphans).Result()
		if err != nil {
			return out, err
		}
		for _, m := range members {
			account, id, ok := strings.Cut(m, sep)
			if ok {
				out = append(out, media.Held{SessionID: id, Account: account, Node: node})
			}
		}
		if len(members) < maxOrphans {
			// Gone for good unless it beats again (a restart adds it back).
			d.rdb.SRem(ctx, d.prefix+"nodes", node)
		}
	}
	return out, nil
}
