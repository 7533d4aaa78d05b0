// Package redisdir is a media.Directory in Redis: one key per session
// holding the base URL of the node that holds its peer, with an expiry. It
// takes a redis.UniversalClient, so Sentinel and Cluster need nothing of
// it.
package redisdir

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every key.
const DefaultPrefix = "streamsession:media:holder:"

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

// Claim records node for ttl (SET with PX).
func (d *Directory) Claim(ctx context.Context, sessionID, node string, ttl time.Duration) error {
	return d.rdb.Set(ctx, d.prefix+sessionID, node, ttl).Err()
}

// Holder returns the node recorded, or "".
func (d *Directory) Holder(ctx context.Context, sessionID string) (string, error) {
	node, err := d.rdb.Get(ctx, d.prefix+sessionID).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return node, err
}

// release deletes the key only while it names the releasing node.
var release = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Release forgets the record if node holds it.
func (d *Directory) Release(ctx context.Context, sessionID, node string) error {
	return release.Run(ctx, d.rdb, []string{d.prefix + sessionID}, node).Err()
}
