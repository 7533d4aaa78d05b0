// Package redisidem keeps the Idempotency-Keys of streaming.new in Redis (a
// server.IdempotencyStore), so that every node of a service replays the
// same answer for one key and two calls with one key on two nodes create
// one session.
//
// A key is a hash under "{Prefix}:i:<SHA-256 of the account>:<SHA-256 of
// the key>" (Redis never holds the key itself) with the body hash, the
// owner of the in-flight marker and, once the call answered, the stored
// answer. Begin is one script: it takes the marker when the key is free
// (the key is created with the owner and an expiry of Lease, atomically, as
// SET NX would), refuses another body, or returns the answer. A call that
// finds the marker held by another call with the same body polls (10 ms,
// doubling up to 200 ms) until that call finishes or its own context ends.
// When Begin fails after its script may have run (the reply was lost, the
// caller's context ended), it frees the marker it may have taken, if Redis
// answers, before it returns.
// Finish is one script that changes the key only while the caller still
// owns the marker: it stores the answer with an expiry of TTL, or deletes
// the key. A node that dies during streaming.new frees the key when its
// marker's Lease lapses.
//
// Concurrency: a Store is safe for concurrent use by multiple goroutines;
// it starts no goroutine.
package redisidem

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
)

// Defaults of Config's zero values.
const (
	// DefaultPrefix is the hash tag of every key (the other Redis backends'
	// default too; the key names never collide).
	DefaultPrefix = "streamsession"
	// DefaultLease is how long an in-flight marker holds a key: longer than
	// any streaming.new takes (the example server bounds a request by 10 s).
	DefaultLease = time.Minute
)

// Polling of a call that waits for another call with the same key.
const (
	firstPoll = 10 * time.Millisecond
	maxPoll   = 200 * time.Millisecond
)

// Config configures a Store. Zero fields take the documented defaults.
type Config struct {
	// Prefix is the hash tag of every key. It must not contain '{' or '}'.
	// The default is DefaultPrefix.
	Prefix string
	// TTL is how long an answer is kept. The default is
	// server.DefaultIdempotencyTTL (24 h).
	TTL time.Duration
	// Lease is how long an in-flight marker lasts when its call neither
	// answers nor fails (its node died). The default is DefaultLease.
	Lease time.Duration
}

// Store is a server.IdempotencyStore in Redis. It is safe for concurrent
// use by multiple goroutines.
type Store struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
	lease  time.Duration
}

var _ server.IdempotencyStore = (*Store)(nil)

// New returns a Store on client. It does not contact Redis. The client
// stays the caller's; create it with ContextTimeoutEnabled so that calls
// return by their context's deadline. An invalid cfg is a 400175 error.
func New(client redis.UniversalClient, cfg Config) (*Store, error) {
	if client == nil {
		return nil, invalid("nil client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, invalid("Prefix %q contains a brace", cfg.Prefix)
	}
	if cfg.TTL == 0 {
		cfg.TTL = server.DefaultIdempotencyTTL
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.TTL < time.Millisecond || cfg.Lease < time.Millisecond {
		return nil, invalid("TTL and Lease must be at least 1ms")
	}
	return &Store{client: client, prefix: "{" + cfg.Prefix + "}:i:", ttl: cfg.TTL, lease: cfg.Lease}, nil
}

func invalid(format string, args ...any) error {
	return sserrors.ErrInvalidParameter.WithCause(fmt.Errorf("redisidem: "+format, args...))
}

// unavailable is a Redis failure: 503/400558 with a Retry-After.
func unavailable(op string, err error) error {
	return sserrors.ErrBackendUnavailable.WithCause(fmt.Errorf("redisidem: %s: %w", op, err))
}

func (s *Store) key(k server.IdempotencyKey) string {
	a := sha256.Sum256([]byte(k.Account))
	b := sha256.Sum256([]byte(k.Key))
	return s.prefix + hex.EncodeToString(a[:]) + ":" + hex.EncodeToString(b[:])
}

// beginScript: KEYS[1] the key; ARGV body hash, owner, lease (ms).
var beginScript = redis.NewScript(`
local h = redis.call('HGET', KEYS[1], 'h')
if not h then
  redis.call('HSET', KEYS[1], 'h', ARGV[1], 'o', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'run'}
end
if h ~= ARGV[1] then
  return {'mismatch'}
end
local a = redis.call('HMGET', KEYS[1], 's', 'c', 'b')
if not a[1] then
  return {'wait'}
end
return {'replay', a[1], a[2], a[3]}
`)

// finishScript: KEYS[1] the key; ARGV owner, then "free", or "store",
// status, content type, body and TTL (ms).
var finishScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 's') == 1 then
  return 0
end
if ARGV[2] == 'free' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 's', ARGV[3], 'c', ARGV[4], 'b', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
`)

// Begin implements server.IdempotencyStore.
func (s *Store) Begin(ctx context.Context, k server.IdempotencyKey) (server.Reservation, error) {
	key := s.key(k)
	body := hex.EncodeToString(k.BodyHash[:])
	var b [16]byte
	rand.Read(b[:])
	owner := base64.RawURLEncoding.EncodeToString(b[:])
	poll := firstPoll
	for {
		res, err := beginScript.Run(ctx, s.client, []string{key}, body, owner, s.lease.Milliseconds()).Slice()
		if err != nil {
			// The script may have run, taking the marker, with its answer
			// lost: free the marker if it is this call's, so that retries
			// of a call that will not run do not wait for its Lease.
			s.abandon(ctx, key, owner)
			if ctx.Err() != nil {
				return server.Reservation{}, ctx.Err()
			}
			return server.Reservation{}, unavailable("begin", err)
		}
		switch verdict, _ := res[0].(string); verdict {
		case "run":
			return server.Reservation{Owner: owner}, nil
		case "mismatch":
			return server.Reservation{}, sserrors.ErrInvalidParameter
		case "replay":
			if len(res) != 4 {
				return server.Reservation{}, unavailable("begin", fmt.Errorf("malformed answer of %d fields", len(res)))
			}
			st, _ := res[1].(string)
			status, err := strconv.Atoi(st)
			if err != nil {
				return server.Reservation{}, unavailable("begin", fmt.Errorf("malformed status %q", st))
			}
			ct, _ := res[2].(string)
			bd, _ := res[3].(string)
			return server.Reservation{Replay: &server.StoredAnswer{Status: status, ContentType: ct, Body: []byte(bd)}}, nil
		case "wait":
		default:
			return server.Reservation{}, unavailable("begin", fmt.Errorf("unexpected verdict %v", res[0]))
		}
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return server.Reservation{}, ctx.Err()
		}
		poll = min(2*poll, maxPoll)
	}
}

// abandonTimeout bounds the freeing of a marker whose Begin failed.
const abandonTimeout = time.Second

// abandon frees key if owner holds its marker and no answer is stored,
// within abandonTimeout and whether or not ctx has ended; it is best effort
// (Redis may be what failed: the Lease frees the key then).
func (s *Store) abandon(ctx context.Context, key, owner string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonTimeout)
	defer cancel()
	_ = finishScript.Run(actx, s.client, []string{key}, owner, "free").Err()
}

// Finish implements server.IdempotencyStore.
func (s *Store) Finish(ctx context.Context, k server.IdempotencyKey, owner string, answer *server.StoredAnswer) error {
	args := []any{owner, "free"}
	if answer != nil {
		args = []any{owner, "store", answer.Status, answer.ContentType, answer.Body, s.ttl.Milliseconds()}
	}
	if err := finishScript.Run(ctx, s.client, []string{s.key(k)}, args...).Err(); err != nil {
		return unavailable("finish", err)
	}
	return nil
}
