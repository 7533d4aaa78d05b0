// Package redisidem keeps the Idempotency-Keys of streaming.new in Redis (a
// server.IdempotencyStore), so that every node of a service replays the
// same answer for one key and two calls with one key on two nodes create
// one session.
//
// # Keys
//
// Every key of an account is under one hash tag of its own, so that the
// accounts spread over the slots of a Redis Cluster and each script runs
// on one slot:
//
//	{Prefix:i:<tag>}:<ID>  hash: the call of one Idempotency-Key
//	{Prefix:i:<tag>}:z     sorted set: the account's stored answers, by
//	                       the Redis time they were stored (µs, made
//	                       strictly increasing, so the oldest is first)
//
// where <tag> is the first 16 bytes of the SHA-256 of the account name, in
// hex, and <ID> is server.IdempotencyKey.ID in hex (the SHA-256 of the
// Idempotency-Key, with the bearer token's scope when there is one). Redis
// holds neither the account name nor the key itself. The call's hash holds
// the body hash ("h", the SHA-256 of the request body, hex), the owner of
// the in-flight marker ("o", random) and, once the call answered, the
// sealed answer ("a"). Keys of the earlier layout (one hash tag,
// "{Prefix}:i:…", answers in clear) are never read: they expire unread, and
// a retry of a call answered before the upgrade runs again.
//
// # Bound per account
//
// An account holds at most Config.MaxKeysPerAccount stored answers (10,000
// by default, as server.MemoryIdempotency): the Finish that stores one more
// forgets the account's oldest answers, in the same script, rather than
// refuse a new call (the oldest key is the least likely to be retried; a
// retry of a forgotten key runs again). Calls in flight are not counted:
// each holds its key for at most Lease. A stored answer of streaming.new
// (about 620 bytes: ids, access token, the realtime URL twice) costs Redis
// about 1.5 KB with its index entry (measured by TestFloodMemoryBound), so
// an account holds at most about 15 MB at the default bound.
//
// # Sealing
//
// A stored answer holds the session's access_token, which opens its
// realtime socket, so Redis never holds it in clear: the answer (status,
// Content-Type and body) is sealed with AES-256-GCM under a key derived
// (HKDF-SHA-256, label "streamsession idempotency v1") from Config.Secret,
// with a random nonce and the Redis key name as additional data, so that
// an answer copied under another key does not open. Nodes with the same
// Secret replay each other's answers. An answer that does not open (a node
// configured with another Secret, or a value altered in Redis) is a
// backend failure: Begin returns an error wrapping
// errors.ErrBackendUnavailable (503/400558 with a Retry-After) and the
// call does not run, since running it again could create a second
// session for a key whose first answer was given; the key stays refused
// until its answer expires (Config.TTL) or the Secret is fixed.
// Key names do not depend on the Secret, so a misconfigured node finds the
// key and refuses rather than running the call a second time.
//
// # Calls
//
// Begin is one script: it takes the marker when the key is free
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
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/seal"
	"github.com/streamsession/streamsession/server"
)

// Defaults of Config's zero values.
const (
	// DefaultPrefix starts the hash tag of every key (the other Redis
	// backends' default too; the key names never collide).
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
	// Secret keys the sealing of the stored answers: every node of a
	// service needs the same one (the service's shared secret, as
	// redistokens.SharedSecret returns). Required, 16 bytes or more. The
	// sealing hides the answers only from those who cannot read the
	// Secret: redistokens.SharedSecret keeps it in Redis itself, so a
	// service that must withstand a reader of Redis passes a secret
	// distributed another way.
	Secret []byte
	// Prefix starts the hash tag of every key. It must not contain '{' or
	// '}'. The default is DefaultPrefix.
	Prefix string
	// TTL is how long an answer is kept. The default is
	// server.DefaultIdempotencyTTL (24 h).
	TTL time.Duration
	// Lease is how long an in-flight marker lasts when its call neither
	// answers nor fails (its node died). The default is DefaultLease.
	Lease time.Duration
	// MaxKeysPerAccount bounds the stored answers of one account: at the
	// bound, storing one more forgets the account's oldest. The default is
	// server.DefaultMaxKeysPerAccount (10,000).
	MaxKeysPerAccount int
}

// Store is a server.IdempotencyStore in Redis. It is safe for concurrent
// use by multiple goroutines.
type Store struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
	lease  time.Duration
	max    int
	seal   *seal.Box
}

// sealInfo is the HKDF label of the sealing key, distinct from the other
// uses of the same secret.
const sealInfo = "streamsession idempotency v1"

var _ server.IdempotencyStore = (*Store)(nil)

// New returns a Store on client. It does not contact Redis. The client
// stays the caller's; create it with ContextTimeoutEnabled so that calls
// return by their context's deadline. An invalid cfg is a 400175 error.
func New(client redis.UniversalClient, cfg Config) (*Store, error) {
	if client == nil {
		return nil, invalid("nil client")
	}
	if len(cfg.Secret) < 16 {
		return nil, invalid("Secret must be 16 bytes or more")
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
	if cfg.MaxKeysPerAccount == 0 {
		cfg.MaxKeysPerAccount = server.DefaultMaxKeysPerAccount
	}
	if cfg.MaxKeysPerAccount < 0 {
		return nil, invalid("MaxKeysPerAccount must not be negative")
	}
	box, err := seal.New(cfg.Secret, sealInfo)
	if err != nil {
		return nil, invalid("secret: %v", err)
	}
	return &Store{client: client, prefix: cfg.Prefix, ttl: cfg.TTL, lease: cfg.Lease, max: cfg.MaxKeysPerAccount, seal: box}, nil
}

func invalid(format string, args ...any) error {
	return sserrors.ErrInvalidParameter.WithCause(fmt.Errorf("redisidem: "+format, args...))
}

// unavailable is a Redis failure: 503/400558 with a Retry-After.
func unavailable(op string, err error) error {
	return sserrors.ErrBackendUnavailable.WithCause(fmt.Errorf("redisidem: %s: %w", op, err))
}

// tagSize is the bytes of the account's SHA-256 in its hash tag.
const tagSize = 16

// keys returns k's Redis key and its account's index of stored answers,
// under the account's hash tag (see the package doc).
func (s *Store) keys(k server.IdempotencyKey) (key, index string) {
	a := sha256.Sum256([]byte(k.Account))
	id := k.ID()
	base := "{" + s.prefix + ":i:" + hex.EncodeToString(a[:tagSize]) + "}:"
	return base + hex.EncodeToString(id[:]), base + "z"
}

// key is k's Redis key.
func (s *Store) key(k server.IdempotencyKey) string {
	key, _ := s.keys(k)
	return key
}

// errUnreadable is a stored answer that does not open under this Store's
// secret and key name.
var errUnreadable = errors.New("stored answer does not open (another Secret, or altered)")

// sealAnswer returns answer sealed for key: a random nonce, then the
// AES-256-GCM of the status (4 bytes, big-endian), the Content-Type's
// length (4 bytes) and the Content-Type, and the body; key is the
// additional data.
func (s *Store) sealAnswer(key string, answer *server.StoredAnswer) []byte {
	plain := make([]byte, 0, 8+len(answer.ContentType)+len(answer.Body))
	plain = binary.BigEndian.AppendUint32(plain, uint32(answer.Status))
	plain = binary.BigEndian.AppendUint32(plain, uint32(len(answer.ContentType)))
	plain = append(plain, answer.ContentType...)
	plain = append(plain, answer.Body...)
	return s.seal.Seal(nil, plain, []byte(key))
}

// openAnswer reverses sealAnswer, or returns errUnreadable.
func (s *Store) openAnswer(key string, sealed []byte) (*server.StoredAnswer, error) {
	plain, err := s.seal.Open(sealed, []byte(key))
	if err != nil || len(plain) < 8 {
		return nil, errUnreadable
	}
	status := binary.BigEndian.Uint32(plain)
	n := binary.BigEndian.Uint32(plain[4:])
	if uint64(n) > uint64(len(plain)-8) || status > 999 {
		return nil, errUnreadable
	}
	ct, body := plain[8:8+n], plain[8+n:]
	return &server.StoredAnswer{Status: int(status), ContentType: string(ct), Body: body}, nil
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
local a = redis.call('HGET', KEYS[1], 'a')
if not a then
  return {'wait'}
end
return {'replay', a}
`)

// finishScript: KEYS[1] the key, KEYS[2] the account's index; ARGV owner,
// then "free", or "store", the sealed answer, TTL (ms) and the bound of
// stored answers. Storing an answer drops the index's expired entries,
// then, past the bound, the oldest answers and their keys, which share the
// index's name up to its last character ("z"): the same hash tag, the same
// slot.
var finishScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 'a') == 1 then
  return 0
end
if ARGV[2] == 'free' then
  redis.call('DEL', KEYS[1])
  return 1
end
local ttl = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'a', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local base = string.sub(KEYS[2], 1, #KEYS[2] - 1)
local id = string.sub(KEYS[1], #base + 1)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl * 1000)
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last == 2 and tonumber(last[2]) >= now then now = tonumber(last[2]) + 1 end
redis.call('ZADD', KEYS[2], now, id)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    redis.call('DEL', base .. old)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
`)

// Begin implements server.IdempotencyStore. A stored answer that does not
// open under this Store's Secret (see the package doc) is an error
// wrapping errors.ErrBackendUnavailable (503/400558); the key stays as it
// is.
func (s *Store) Begin(ctx context.Context, k server.IdempotencyKey) (server.Reservation, error) {
	key, index := s.keys(k)
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
			s.abandon(ctx, key, index, owner)
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
			if len(res) != 2 {
				return server.Reservation{}, unavailable("begin", fmt.Errorf("malformed answer of %d fields", len(res)))
			}
			sealed, _ := res[1].(string)
			answer, err := s.openAnswer(key, []byte(sealed))
			if err != nil {
				return server.Reservation{}, unavailable("begin", err)
			}
			return server.Reservation{Replay: answer}, nil
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
func (s *Store) abandon(ctx context.Context, key, index, owner string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonTimeout)
	defer cancel()
	_ = finishScript.Run(actx, s.client, []string{key, index}, owner, "free").Err()
}

// Finish implements server.IdempotencyStore. It stores answer sealed (see
// the package doc).
func (s *Store) Finish(ctx context.Context, k server.IdempotencyKey, owner string, answer *server.StoredAnswer) error {
	key, index := s.keys(k)
	args := []any{owner, "free"}
	if answer != nil {
		args = []any{owner, "store", s.sealAnswer(key, answer), s.ttl.Milliseconds(), s.max}
	}
	if err := finishScript.Run(ctx, s.client, []string{key, index}, args...).Err(); err != nil {
		return unavailable("finish", err)
	}
	return nil
}
