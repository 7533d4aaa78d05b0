// Package redistokens keeps the bearer tokens of streaming.create_token in
// Redis (a server.TokenStore), so that a token minted through one server
// node works on every node, and agrees on the access-token secret
// (server.Config.Secret) through Redis, so that a realtime socket may open
// on any node.
//
// Start with New for the TokenStore and SharedSecret for the secret; both
// take the redis.UniversalClient the node's other Redis backends use.
//
// A token is a hash under the key "{Prefix}:t:<SHA-256 of the token>"
// (Redis never holds a token itself) with the account, the session it
// created and its claim, and an expiry of TTL that every use restarts.
// Every call is one round trip, and every change one script. A claim (a
// streaming.new in flight) lapses after ClaimTTL, so a node that dies
// during streaming.new does not spend the token.
//
// Concurrency: a Store is safe for concurrent use by multiple goroutines;
// it starts no goroutine.
package redistokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// Defaults of Config's zero values.
const (
	// DefaultPrefix is the hash tag of every key (the other Redis backends'
	// default too; the key names never collide).
	DefaultPrefix = "streamsession"
	// DefaultClaimTTL is how long a claim lasts.
	DefaultClaimTTL = time.Minute
)

// Config configures a Store. Zero fields take the documented defaults.
type Config struct {
	// Prefix is the hash tag of every key. It must not contain '{' or '}'.
	// The default is DefaultPrefix.
	Prefix string
	// TTL is how long a token lives unused. The default is
	// server.DefaultTokenTTL (one hour).
	TTL time.Duration
	// ClaimTTL is how long a claim (a streaming.new in flight) holds the
	// token: past it the token is unused again, in case the node serving
	// that streaming.new died. The default is DefaultClaimTTL (1 minute).
	ClaimTTL time.Duration
}

// Store is a server.TokenStore in Redis. It is safe for concurrent use by
// multiple goroutines.
type Store struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
	claim  time.Duration
}

var _ server.TokenStore = (*Store)(nil)

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
		cfg.TTL = server.DefaultTokenTTL
	}
	if cfg.ClaimTTL == 0 {
		cfg.ClaimTTL = DefaultClaimTTL
	}
	if cfg.TTL < time.Millisecond || cfg.ClaimTTL < time.Millisecond {
		return nil, invalid("TTL and ClaimTTL must be at least 1ms")
	}
	return &Store{client: client, prefix: "{" + cfg.Prefix + "}:t:", ttl: cfg.TTL, claim: cfg.ClaimTTL}, nil
}

func invalid(format string, args ...any) error {
	return sserrors.ErrInvalidParameter.WithCause(fmt.Errorf("redistokens: "+format, args...))
}

// unavailable is a Redis failure: 503/400558 with a Retry-After, which the
// server answers as it is.
func unavailable(op string, err error) error {
	return sserrors.ErrBackendUnavailable.
		WithCause(fmt.Errorf("redistokens: %s: %w", op, err))
}

func (s *Store) key(token string) string {
	sum := sha256.Sum256([]byte(token))
	return s.prefix + hex.EncodeToString(sum[:])
}

// Mint stores a new unused token for acct ("sst_" and 32 random bytes).
func (s *Store) Mint(ctx context.Context, acct session.Account) (string, error) {
	data, err := json.Marshal(acct)
	if err != nil {
		return "", invalid("account: %v", err)
	}
	var b [32]byte
	rand.Read(b[:])
	token := "sst_" + base64.RawURLEncoding.EncodeToString(b[:])
	if err := mintScript.Run(ctx, s.client, []string{s.key(token)}, data, s.ttl.Milliseconds()).Err(); err != nil {
		return "", unavailable("mint", err)
	}
	return token, nil
}

// Get returns the token's record and restarts its expiry.
func (s *Store) Get(ctx context.Context, token string) (server.Token, error) {
	return s.run(ctx, "get", getScript, token)
}

// Claim reserves an unused token for one streaming.new; a token claimed
// (within ClaimTTL) or bound is refused with 401/400112.
func (s *Store) Claim(ctx context.Context, token string) (server.Token, error) {
	return s.run(ctx, "claim", claimScript, token, s.claim.Milliseconds())
}

// Bind binds a claimed token to the session its streaming.new created.
func (s *Store) Bind(ctx context.Context, token, sessionID string) error {
	if sessionID == "" {
		return invalid("empty session id")
	}
	_, err := s.run(ctx, "bind", bindScript, token, sessionID)
	return err
}

// Unclaim makes a claimed token unused again.
func (s *Store) Unclaim(ctx context.Context, token string) error {
	_, err := s.run(ctx, "unclaim", unclaimScript, token)
	return err
}

// Revoke deletes the token; revoking an unknown token does nothing.
func (s *Store) Revoke(ctx context.Context, token string) error {
	if err := s.client.Del(ctx, s.key(token)).Err(); err != nil {
		return unavailable("revoke", err)
	}
	return nil
}

// run runs one of the token scripts: they all take the key, the TTL and
// then args, and answer {account JSON, session id, claimed (0/1)} or an
// empty list for a token refused.
func (s *Store) run(ctx context.Context, op string, script *redis.Script, token string, args ...any) (server.Token, error) {
	if token == "" {
		return server.Token{}, sserrors.ErrUnauthorized
	}
	all := append([]any{s.ttl.Milliseconds()}, args...)
	res, err := script.Run(ctx, s.client, []string{s.key(token)}, all...).Slice()
	if err != nil {
		return server.Token{}, unavailable(op, err)
	}
	if len(res) != 3 {
		return server.Token{}, sserrors.ErrUnauthorized
	}
	data, _ := res[0].(string)
	sid, _ := res[1].(string)
	claimed, _ := res[2].(int64)
	var t server.Token
	if err := json.Unmarshal([]byte(data), &t.Account); err != nil {
		return server.Token{}, sserrors.ErrInternalServerError.WithCause(fmt.Errorf("redistokens: corrupt token: %w", err))
	}
	t.SessionID, t.Claimed = sid, claimed == 1
	return t, nil
}

// The scripts. Fields: a (the account, JSON), s (the session id, "" until
// bound), c (the claim's expiry in Redis milliseconds, "0" when not
// claimed).
const nowMs = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// reply is the common tail: the token as {a, s, claimed}.
const reply = `
local h = redis.call('HMGET', KEYS[1], 'a', 's', 'c')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local claimed = 0
if tonumber(h[3]) > now then claimed = 1 end
return {h[1], h[2], claimed}
`

var (
	// KEYS: 1 token. ARGV: 1 account JSON, 2 TTL ms.
	mintScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'a', ARGV[1], 's', '', 'c', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)
	// KEYS: 1 token. ARGV: 1 TTL ms.
	getScript = redis.NewScript(nowMs + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
` + reply)
	// KEYS: 1 token. ARGV: 1 TTL ms, 2 claim TTL ms.
	claimScript = redis.NewScript(nowMs + `
local h = redis.call('HMGET', KEYS[1], 's', 'c')
if not h[1] or h[1] ~= '' or tonumber(h[2]) > now then return {} end
redis.call('HSET', KEYS[1], 'c', string.format('%d', now + tonumber(ARGV[2])))
` + reply)
	// KEYS: 1 token. ARGV: 1 TTL ms, 2 session id.
	bindScript = redis.NewScript(nowMs + `
local h = redis.call('HMGET', KEYS[1], 's', 'c')
if not h[1] or h[1] ~= '' or h[2] == '0' then return {} end
redis.call('HSET', KEYS[1], 's', ARGV[2], 'c', '0')
` + reply)
	// KEYS: 1 token. ARGV: 1 TTL ms.
	unclaimScript = redis.NewScript(nowMs + `
local h = redis.call('HMGET', KEYS[1], 's', 'c')
if not h[1] or h[1] ~= '' or h[2] == '0' then return {} end
redis.call('HSET', KEYS[1], 'c', '0')
` + reply)
)

// SharedSecret returns the access-token secret every node using this
// Redis and prefix agrees on: the first node to ask stores 32 random bytes
// (SET NX), and every node reads what is stored. The secret never expires;
// deleting the key "{prefix}:secret" rotates it (tokens minted before stop
// working on nodes started after). An empty prefix means DefaultPrefix.
func SharedSecret(ctx context.Context, client redis.UniversalClient, prefix string) ([]byte, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, invalid("prefix %q contains a brace", prefix)
	}
	var b [32]byte
	rand.Read(b[:])
	key := "{" + prefix + "}:secret"
	got, err := secretScript.Run(ctx, client, []string{key}, hex.EncodeToString(b[:])).Text()
	if err != nil {
		return nil, unavailable("secret", err)
	}
	secret, err := hex.DecodeString(got)
	if err != nil || len(secret) < 16 {
		return nil, sserrors.ErrInternalServerError.WithCause(fmt.Errorf("redistokens: the stored secret is not 16 or more bytes in hex"))
	}
	return secret, nil
}

// KEYS: 1 secret. ARGV: 1 candidate. Returns the secret stored.
var secretScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`)
