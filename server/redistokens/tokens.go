// Package redistokens keeps the bearer tokens of streaming.create_token in
// Redis (a server.TokenStore), so that a token minted through one server
// node works on every node, and agrees on the service's secret
// (server.Config.Secret) through Redis, so that a realtime socket may open
// on any node.
//
// Start with SharedSecret for the secret, then New for the TokenStore;
// both take the redis.UniversalClient the node's other Redis backends use.
//
// # Tokens
//
// A token is "sst_" and 80 base64url characters: AES-256-GCM, under a key
// derived from the shared secret, of the account's tag (16 bytes of an HMAC
// of the account name) and 16 random bytes, with a random nonce. It shows
// nothing of the account (no two tokens look alike), yet every node holding
// the secret finds from it, without asking Redis, which account's keys
// hold it; a token that does not open is refused without a round trip.
//
// # Keys
//
// Every key of an account is under one hash tag, "{Prefix:a:<tag in hex>}",
// so that every call is one script on one slot, atomic on a Redis Cluster
// too:
//
//	{…}:z  sorted set: one member per outstanding token (16 bytes of the
//	       token's SHA-256), scored by its expiry in Redis milliseconds
//	{…}:s  hash: token member → "r<nonce><lease expiry>" while a Reserve holds
//	       it, "s<session id>" once spent; absent while unused
//	{…}:a  the account (JSON), as of its latest Mint
//
// Redis never holds a token, nor what rebuilds one. Time is Redis's TIME.
// Every call but Revoke and Release first drops up to 64 expired
// members of its account (lazily:
// an expired token stops counting at once, since counting reads scores);
// each use sets the token's score to now + TTL and the three keys' expiry to
// TTL, so an account's keys vanish an hour after its last token was used.
// Memory is bounded per account: at most MaxPerAccount live members plus
// the expired ones not yet dropped, about 120 bytes each (a sorted-set
// entry; a spent token adds a hash field with its session id).
//
// # Spending
//
// Reserve holds the token with a lease (ClaimTTL, under a random nonce that
// names the hold); Bind spends it on a session if the lease is still that
// hold's; Release deletes the hold. The streaming.new handler sequences
// them around the creation of the session. A Reserve whose reply was lost
// (the script ran, its answer did not arrive) gives its hold back if Redis
// answers a moment later; a Bind whose reply was lost undoes its binding
// the same way before it returns its error, so that the handler may stop
// the session. When a node dies mid-way, the lease lapses after ClaimTTL
// and the token is usable again (a session created meanwhile was never
// answered to anyone; its join timer closes it and frees its slot).
//
// Concurrency: a Store is safe for concurrent use by multiple goroutines;
// it starts no goroutine.
package redistokens

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/seal"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// Defaults of Config's zero values.
const (
	// DefaultPrefix starts the hash tag of every key (the other Redis
	// backends' default too; the key names never collide).
	DefaultPrefix = "streamsession"
	// DefaultClaimTTL is how long a Reserve holds a token.
	DefaultClaimTTL = server.DefaultTokenHoldTTL
)

// Config configures a Store. Zero fields take the documented defaults.
type Config struct {
	// Secret keys the tokens: every node of a service needs the same one
	// (SharedSecret, or server.Config.Secret). Required, 16 bytes or more.
	Secret []byte
	// Prefix starts the hash tag of every key. It must not contain '{' or
	// '}'. The default is DefaultPrefix.
	Prefix string
	// TTL is how long a token lives unused. The default is
	// server.DefaultTokenTTL (one hour).
	TTL time.Duration
	// ClaimTTL is how long a Reserve holds the token while its session is
	// created: past it the token is unused again, in case the node serving
	// that streaming.new died. The default is DefaultClaimTTL (1 minute).
	ClaimTTL time.Duration
	// MaxPerAccount returns the bound of outstanding tokens of an account
	// (0 refuses every Mint). The default (nil) is
	// server.DefaultMaxTokensPerAccount for every account.
	MaxPerAccount func(session.Account) int
}

// Store is a server.TokenStore in Redis. It is safe for concurrent use by
// multiple goroutines.
type Store struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
	claim  time.Duration
	maxFor func(session.Account) int
	seal   *seal.Box
	tagKey []byte
}

var _ server.TokenStore = (*Store)(nil)

// Key derivation labels: one key for sealing tokens, one for account tags.
const (
	sealInfo = "streamsession bearer token v1"
	tagInfo  = "streamsession bearer account tag v1"
)

// Sizes of a token: its plaintext is the account tag and random bytes.
const (
	tagSize    = 16
	randSize   = 16
	plainSize  = tagSize + randSize
	sealedSize = 12 + plainSize + 16 // nonce, plaintext, GCM tag
	tokenText  = "sst_"
)

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
		cfg.TTL = server.DefaultTokenTTL
	}
	if cfg.ClaimTTL == 0 {
		cfg.ClaimTTL = DefaultClaimTTL
	}
	if cfg.TTL < time.Millisecond || cfg.ClaimTTL < time.Millisecond {
		return nil, invalid("TTL and ClaimTTL must be at least 1ms")
	}
	if cfg.MaxPerAccount == nil {
		cfg.MaxPerAccount = func(session.Account) int { return server.DefaultMaxTokensPerAccount }
	}
	box, err := seal.New(cfg.Secret, sealInfo)
	if err != nil {
		return nil, invalid("secret: %v", err)
	}
	tagKey, err := seal.Key(cfg.Secret, tagInfo)
	if err != nil {
		return nil, invalid("secret: %v", err)
	}
	return &Store{
		client: client, prefix: cfg.Prefix, ttl: cfg.TTL, claim: cfg.ClaimTTL,
		maxFor: cfg.MaxPerAccount, seal: box, tagKey: tagKey,
	}, nil
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

// keys returns the account's keys (sorted set, states, account) for an
// account tag.
func (s *Store) keys(tag []byte) []string {
	base := "{" + s.prefix + ":a:" + hex.EncodeToString(tag) + "}:"
	return []string{base + "z", base + "s", base + "a"}
}

func (s *Store) accountTag(name string) []byte {
	h := hmac.New(sha256.New, s.tagKey)
	h.Write([]byte(name))
	return h.Sum(nil)[:tagSize]
}

// member is the token's name in its account's keys.
func member(token string) string {
	sum := sha256.Sum256([]byte(token))
	return string(sum[:16])
}

// open returns the keys of a token's account and the token's member, and
// false for a string that is not a token sealed under this secret.
func (s *Store) open(token string) ([]string, string, bool) {
	body, ok := strings.CutPrefix(token, tokenText)
	if !ok || base64.RawURLEncoding.DecodedLen(len(body)) != sealedSize {
		return nil, "", false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, "", false
	}
	plain, err := s.seal.Open(sealed, []byte(sealInfo))
	if err != nil || len(plain) != plainSize {
		return nil, "", false
	}
	return s.keys(plain[:tagSize]), member(token), true
}

// Mint stores a new unused token for acct, or refuses it with
// server.TooManyTokens when acct holds its bound of live tokens (counted
// and added in one script, so that nodes minting at once never pass the
// bound).
func (s *Store) Mint(ctx context.Context, acct session.Account) (string, error) {
	data, err := json.Marshal(acct)
	if err != nil {
		return "", invalid("account: %v", err)
	}
	tag := s.accountTag(acct.Name)
	plain := make([]byte, plainSize)
	copy(plain, tag)
	rand.Read(plain[tagSize:])
	token := tokenText + base64.RawURLEncoding.EncodeToString(s.seal.Seal(nil, plain, []byte(sealInfo)))
	res, err := mintScript.Run(ctx, s.client, s.keys(tag), member(token), data, s.ttl.Milliseconds(), s.maxFor(acct)).Int64Slice()
	if err != nil {
		return "", unavailable("mint", err)
	}
	if len(res) != 2 {
		return "", unavailable("mint", fmt.Errorf("unexpected reply %v", res))
	}
	if res[0] == 0 {
		until := server.MaxTokenRetryAfter
		if res[1] >= 0 {
			until = time.Duration(res[1]) * time.Millisecond
		}
		return "", server.TooManyTokens(until)
	}
	return token, nil
}

// Get returns the token's record and restarts its expiry.
func (s *Store) Get(ctx context.Context, token string) (server.Token, error) {
	keys, m, ok := s.open(token)
	if !ok {
		return server.Token{}, sserrors.ErrUnauthorized
	}
	res, err := getScript.Run(ctx, s.client, keys, m, s.ttl.Milliseconds()).StringSlice()
	if err != nil {
		return server.Token{}, unavailable("get", err)
	}
	if len(res) != 2 {
		return server.Token{}, sserrors.ErrUnauthorized
	}
	acct, err := decodeAccount(res[0])
	if err != nil {
		return server.Token{}, err
	}
	return server.Token{Account: acct, SessionID: res[1]}, nil
}

func decodeAccount(data string) (session.Account, error) {
	var acct session.Account
	if err := json.Unmarshal([]byte(data), &acct); err != nil {
		return session.Account{}, sserrors.ErrInternalServerError.WithCause(fmt.Errorf("redistokens: corrupt account: %w", err))
	}
	return acct, nil
}

// Check returns the account name of a token spent on sessionID, without
// changing it; it restarts its expiry.
func (s *Store) Check(ctx context.Context, token, sessionID string) (string, error) {
	keys, m, ok := s.open(token)
	if !ok {
		return "", sserrors.ErrUnauthorized
	}
	res, err := checkScript.Run(ctx, s.client, keys, m, s.ttl.Milliseconds(), sessionID).StringSlice()
	if err != nil {
		return "", unavailable("check", err)
	}
	if len(res) != 1 {
		return "", sserrors.ErrUnauthorized
	}
	acct, err := decodeAccount(res[0])
	if err != nil {
		return "", err
	}
	return acct.Name, nil
}

// errLost is the binding's refusal when the token is no longer held by
// the hold presented: it expired, was revoked, or its lease lapsed and
// another Reserve took it.
var errLost = sserrors.ErrUnauthorized.WithCause(errors.New("redistokens: the token was lost while its session was created"))

// Reserve holds an unused token for ClaimTTL (see server.TokenStore).
func (s *Store) Reserve(ctx context.Context, token string) (server.TokenHold, error) {
	keys, m, ok := s.open(token)
	if !ok {
		return server.TokenHold{}, sserrors.ErrUnauthorized
	}
	var n [8]byte
	rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	res, err := reserveScript.Run(ctx, s.client, keys, m, s.ttl.Milliseconds(), s.claim.Milliseconds(), nonce).StringSlice()
	if err != nil {
		// The script may have reserved the token, its reply lost: give the
		// reservation back if it is this one, or the token would answer
		// 401 to the caller's retry until ClaimTTL.
		s.unreserve(ctx, keys, m, nonce)
		return server.TokenHold{}, unavailable("reserve", err)
	}
	if len(res) != 1 {
		return server.TokenHold{}, sserrors.ErrUnauthorized
	}
	acct, err := decodeAccount(res[0])
	if err != nil {
		s.unreserve(ctx, keys, m, nonce)
		return server.TokenHold{}, err
	}
	return server.TokenHold{Account: acct, ID: nonce}, nil
}

// Bind spends the token held by hold on sessionID (see
// server.TokenStore). When its reply is lost, it undoes the binding it may
// have made before it returns the error.
func (s *Store) Bind(ctx context.Context, token string, hold server.TokenHold, sessionID string) error {
	keys, m, ok := s.open(token)
	if !ok || !validNonce(hold.ID) || sessionID == "" {
		return errLost
	}
	bound, err := commitScript.Run(ctx, s.client, keys, m, s.ttl.Milliseconds(), hold.ID, sessionID).Int()
	switch {
	case err != nil:
		// The binding may have been made, its reply lost: undo it, or the
		// token would stay spent on the session the caller now stops.
		s.unbind(ctx, keys, m, sessionID)
		return unavailable("bind", err)
	case bound != 1:
		return errLost
	}
	return nil
}

// Release gives the token held by hold back unused (see
// server.TokenStore).
func (s *Store) Release(ctx context.Context, token string, hold server.TokenHold) error {
	keys, m, ok := s.open(token)
	if !ok || !validNonce(hold.ID) {
		return nil
	}
	if err := releaseScript.Run(ctx, s.client, keys, m, hold.ID).Err(); err != nil {
		// The lease lapses by itself after ClaimTTL.
		return unavailable("release", err)
	}
	return nil
}

// validNonce reports whether id is a hold's name as Reserve makes them (16
// hex digits), which the scripts compare by position.
func validNonce(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// unreserveTimeout bounds the giving back of a reservation whose reply was
// lost.
const unreserveTimeout = time.Second

// unreserve deletes the token's reservation if it is still nonce's, within
// unreserveTimeout whether or not ctx has ended. It is best effort: when
// Redis is what failed, the lease lapses after ClaimTTL instead.
func (s *Store) unreserve(ctx context.Context, keys []string, m, nonce string) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unreserveTimeout)
	defer cancel()
	_ = releaseScript.Run(uctx, s.client, keys, m, nonce).Err()
}

// unbind gives back, unused, a token spent on sessionID, within
// unreserveTimeout whether or not ctx has ended. It is best effort: when
// Redis is what failed, the token stays spent on a session that discard
// stops.
func (s *Store) unbind(ctx context.Context, keys []string, m, sessionID string) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unreserveTimeout)
	defer cancel()
	_ = unbindScript.Run(uctx, s.client, keys, m, sessionID).Err()
}

// Revoke deletes the token; revoking an unknown token does nothing.
func (s *Store) Revoke(ctx context.Context, token string) error {
	keys, m, ok := s.open(token)
	if !ok {
		return nil
	}
	if err := revokeScript.Run(ctx, s.client, keys, m).Err(); err != nil {
		return unavailable("revoke", err)
	}
	return nil
}

// The scripts. KEYS: 1 the account's sorted set, 2 its states, 3 its
// account. ARGV[1] is always the token's member; each script lists the
// rest.

// prelude reads Redis's clock, drops up to 64 expired tokens of the
// account, and defines live (the token has not expired) and keep (restart
// the token's expiry and the keys').
const prelude = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 64)
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
end
local function live()
  local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
  return exp and tonumber(exp) > now
end
local function keep()
  local ttl = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
-- state: 'unused', 'held' (a Reserve's lease runs) or 'spent', and the rest.
local function state()
  local st = redis.call('HGET', KEYS[2], ARGV[1])
  if not st then return 'unused', '' end
  local kind = string.sub(st, 1, 1)
  if kind == 's' then return 'spent', string.sub(st, 2) end
  if tonumber(string.sub(st, 18)) > now then return 'held', string.sub(st, 2, 17) end
  return 'unused', ''
end
`

var (
	// ARGV: 1 member, 2 account JSON, 3 TTL ms, 4 bound. Returns {1, 0},
	// or {0, ms until the oldest live token expires (-1 when none)} when the
	// account holds its bound.
	mintScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 64)
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
end
local ttl = tonumber(ARGV[3])
local from = '(' .. string.format('%d', now)
if redis.call('ZCOUNT', KEYS[1], from, '+inf') >= tonumber(ARGV[4]) then
  local first = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #first == 0 then return {0, -1} end
  return {0, tonumber(first[2]) - now}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
return {1, 0}
`)
	// ARGV: 1 member, 2 TTL ms. Returns {account, session id or ""}.
	getScript = redis.NewScript(prelude + `
if not live() then return {} end
keep()
local kind, rest = state()
local sid = ''
if kind == 'spent' then sid = rest end
local a = redis.call('GET', KEYS[3])
if not a then return {} end
return {a, sid}
`)
	// ARGV: 1 member, 2 TTL ms, 3 session id. Returns {account} for a
	// token spent on the session.
	checkScript = redis.NewScript(prelude + `
if not live() then return {} end
local kind, rest = state()
if kind ~= 'spent' or rest ~= ARGV[3] then return {} end
keep()
local a = redis.call('GET', KEYS[3])
if not a then return {} end
return {a}
`)
	// ARGV: 1 member, 2 TTL ms, 3 lease ms, 4 nonce (16 hex). Returns
	// {account}.
	reserveScript = redis.NewScript(prelude + `
if not live() then return {} end
local kind = state()
if kind ~= 'unused' then return {} end
local a = redis.call('GET', KEYS[3])
if not a then return {} end
redis.call('HSET', KEYS[2], ARGV[1], 'r' .. ARGV[4] .. string.format('%d', now + tonumber(ARGV[3])))
keep()
return {a}
`)
	// ARGV: 1 member, 2 nonce. Deletes the reservation if it is still
	// this nonce's.
	releaseScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[2], ARGV[1])
if st and string.sub(st, 1, 17) == 'r' .. ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
`)
	// ARGV: 1 member, 2 TTL ms, 3 nonce, 4 session id. Returns 1 when the
	// token is now spent on the session, 0 when the reservation was lost.
	commitScript = redis.NewScript(prelude + `
if not live() then return 0 end
local st = redis.call('HGET', KEYS[2], ARGV[1])
if not st or string.sub(st, 1, 17) ~= 'r' .. ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], 's' .. ARGV[4])
keep()
return 1
`)
	// ARGV: 1 member, 2 session id. Makes the token unused again if it is
	// spent on that session.
	unbindScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], ARGV[1]) == 's' .. ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
`)
	// ARGV: 1 member.
	revokeScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)
)
