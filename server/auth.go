package server

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/session"
)

// Accounts finds the account an API key (the X-Api-Key header) belongs to.
// Implementations are safe for concurrent use by multiple goroutines.
type Accounts interface {
	// LookupAPIKey returns the account of apiKey, and false when the key is
	// unknown.
	LookupAPIKey(apiKey string) (session.Account, bool)
}

// AccountsByKey is an [Accounts] over a fixed map from API key to account.
// It is safe for concurrent use as long as nobody modifies the map.
type AccountsByKey map[string]session.Account

// LookupAPIKey returns the account of apiKey.
func (a AccountsByKey) LookupAPIKey(apiKey string) (session.Account, bool) {
	acct, ok := a[apiKey]
	return acct, ok
}

// Token is what a [TokenStore] keeps about one bearer token from
// streaming.create_token. It is a plain value, safe to copy.
type Token struct {
	// Account is the account of the API key that minted the token.
	Account session.Account
	// SessionID is the session the token was spent on, empty until then.
	SessionID string
}

// TokenStore keeps the bearer tokens minted by streaming.create_token: a
// token authorises one streaming.new, then the calls naming the session it
// created. Every method returns [sserrors.ErrUnauthorized] (wrapped or not)
// for a token that is unknown, revoked or expired, and a 503/400558 error
// when the store's backend fails.
//
// A token is outstanding from Mint until it expires (TTL after its last
// use) or is revoked, spent or not; an account holds at most its bound of
// outstanding tokens. Every method costs O(1) or O(log n) in the tokens of
// the token's own account: no call looks at another account's tokens.
//
// Implementations are safe for concurrent use by multiple goroutines.
// [NewMemoryTokens] is the in-memory one; several server nodes need a shared
// implementation (server/redistokens).
type TokenStore interface {
	// Mint stores a new unused token for acct and returns it. An account
	// at its bound is refused with [TooManyTokens] (429/400140 with a
	// Retry-After); nothing is stored then.
	Mint(ctx context.Context, acct session.Account) (string, error)
	// Get returns the token's record and counts this call as a use (it
	// restarts the token's idle expiry).
	Get(ctx context.Context, token string) (Token, error)
	// Check returns the account name of a token that is either unspent (not
	// spent and no Spend in flight) or spent on sessionID, without spending
	// it; it counts as a use. Any other token is refused with
	// ErrUnauthorized. The realtime socket checks the bearer token a client
	// passes as session_token with it.
	Check(ctx context.Context, token, sessionID string) (string, error)
	// Spend spends an unused token on one session, as one operation: it
	// reserves the token (a second Spend of it is refused with
	// ErrUnauthorized), calls create with the token's account, and binds
	// the token to the session id create returns. When create fails, the
	// token is given back unused and create's error is returned (joined
	// with the store's error if giving it back failed). When the binding
	// fails after create succeeded (the backend failed, or the token was
	// revoked or expired meanwhile), Spend calls discard with the new
	// session's id, so that no session outlives its token unusable, and
	// returns the binding's error joined with discard's. create and discard
	// run on the caller's goroutine, with ctx (discard with ctx's values
	// but without its cancellation).
	Spend(ctx context.Context, token string, create func(context.Context, session.Account) (sessionID string, err error), discard func(ctx context.Context, sessionID string) error) error
	// Revoke deletes the token. Revoking an unknown token does nothing.
	Revoke(ctx context.Context, token string) error
}

// Bounds of bearer tokens.
const (
	// DefaultTokenTTL is how long a bearer token lives unused.
	DefaultTokenTTL = time.Hour
	// DefaultMaxTokensPerAccount is the bound of outstanding bearer tokens
	// of an account when its plan sets none.
	DefaultMaxTokensPerAccount = 1000
	// MaxTokenRetryAfter caps the Retry-After of [TooManyTokens].
	MaxTokenRetryAfter = time.Minute
)

// TooManyTokens returns the refusal of a Mint for an account at its bound:
// 429/400140 ("Exceed rate limit") with a Retry-After of untilFree, the
// time until the account's oldest outstanding token expires, kept between
// one second and [MaxTokenRetryAfter] (a token also frees its place sooner
// when it is revoked, so a client should not wait for an hour).
func TooManyTokens(untilFree time.Duration) error {
	return errTooManyTokens.WithRetryAfter(min(max(untilFree, time.Second), MaxTokenRetryAfter))
}

// MemoryTokensConfig configures [NewMemoryTokens]. Zero fields take the
// documented defaults.
type MemoryTokensConfig struct {
	// TTL is how long a token lives unused. The default is one hour.
	TTL time.Duration
	// MaxPerAccount returns the bound of outstanding tokens of an account
	// (0 refuses every Mint). The default (nil) is
	// DefaultMaxTokensPerAccount for every account.
	MaxPerAccount func(session.Account) int
	// Now returns the current time. The default is time.Now.
	Now func() time.Time
}

// MemoryTokens is a [TokenStore] in memory, for one server node. It keeps
// only a SHA-256 of each token, so a memory dump does not reveal tokens.
//
// Each account's tokens sit in a list from the least to the most recently
// used, so the account's oldest token is at hand: Mint drops the expired
// tokens at the front of its own account's list and counts the rest, every
// other call touches one token; nothing ever scans all tokens. Expired
// tokens of an account that mints no more stay until they are presented
// again (then dropped), so memory is bounded by the sum of the accounts'
// bounds. It starts no goroutine. It is safe for concurrent use by
// multiple goroutines.
type MemoryTokens struct {
	ttl    time.Duration
	maxFor func(session.Account) int
	now    func() time.Time

	mu       sync.Mutex
	tokens   map[tokenKey]*memoryToken
	accounts map[string]*memoryAccount
}

type tokenKey [sha256.Size]byte

// memoryAccount is one account's tokens, least recently used first.
type memoryAccount struct {
	acct       session.Account // as of its latest Mint
	head, tail *memoryToken
	n          int
}

type memoryToken struct {
	key        tokenKey
	owner      *memoryAccount
	sessionID  string
	spending   bool // a Spend is creating its session
	lastUsed   time.Time
	prev, next *memoryToken
}

// NewMemoryTokens returns an empty in-memory token store.
func NewMemoryTokens(cfg MemoryTokensConfig) *MemoryTokens {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTokenTTL
	}
	if cfg.MaxPerAccount == nil {
		cfg.MaxPerAccount = func(session.Account) int { return DefaultMaxTokensPerAccount }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemoryTokens{
		ttl: cfg.TTL, maxFor: cfg.MaxPerAccount, now: cfg.Now,
		tokens:   make(map[tokenKey]*memoryToken),
		accounts: make(map[string]*memoryAccount),
	}
}

// Mint stores a new unused token for acct ("sst_" and 32 random bytes), or
// refuses it with TooManyTokens when acct holds its bound of tokens.
func (m *MemoryTokens) Mint(ctx context.Context, acct session.Account) (string, error) {
	token := "sst_" + randomString(32)
	now := m.now()
	bound := m.maxFor(acct)
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.accounts[acct.Name]
	if a != nil {
		for a.head != nil && m.expired(a.head, now) {
			m.removeLocked(a.head)
		}
	}
	if n := m.countLocked(acct.Name); n >= bound {
		until := MaxTokenRetryAfter
		if a := m.accounts[acct.Name]; a != nil {
			until = a.head.lastUsed.Add(m.ttl).Sub(now)
		}
		return "", TooManyTokens(until)
	}
	a = m.accounts[acct.Name]
	if a == nil {
		a = &memoryAccount{}
		m.accounts[acct.Name] = a
	}
	a.acct = acct
	t := &memoryToken{key: sha256.Sum256([]byte(token)), owner: a, lastUsed: now}
	m.tokens[t.key] = t
	a.push(t)
	return token, nil
}

func (m *MemoryTokens) countLocked(account string) int {
	if a := m.accounts[account]; a != nil {
		return a.n
	}
	return 0
}

func (m *MemoryTokens) expired(t *memoryToken, now time.Time) bool {
	return now.Sub(t.lastUsed) >= m.ttl
}

// removeLocked forgets t, and its account when t was its last token.
func (m *MemoryTokens) removeLocked(t *memoryToken) {
	delete(m.tokens, t.key)
	a := t.owner
	a.unlink(t)
	if a.n == 0 && m.accounts[a.acct.Name] == a {
		delete(m.accounts, a.acct.Name)
	}
}

// liveLocked returns the token's entry, dropping it when it has expired.
func (m *MemoryTokens) liveLocked(token string, now time.Time) *memoryToken {
	t, ok := m.tokens[sha256.Sum256([]byte(token))]
	if !ok {
		return nil
	}
	if m.expired(t, now) {
		m.removeLocked(t)
		return nil
	}
	return t
}

// touchLocked counts a use of t: it restarts its expiry and moves it to the
// back of its account's list.
func (m *MemoryTokens) touchLocked(t *memoryToken, now time.Time) {
	t.lastUsed = now
	t.owner.unlink(t)
	t.owner.push(t)
}

func (a *memoryAccount) push(t *memoryToken) {
	t.prev, t.next = a.tail, nil
	if a.tail != nil {
		a.tail.next = t
	} else {
		a.head = t
	}
	a.tail = t
	a.n++
}

func (a *memoryAccount) unlink(t *memoryToken) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		a.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		a.tail = t.prev
	}
	t.prev, t.next = nil, nil
	a.n--
}

// Get returns the token's record and restarts its idle expiry.
func (m *MemoryTokens) Get(ctx context.Context, token string) (Token, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.liveLocked(token, now)
	if t == nil {
		return Token{}, sserrors.ErrUnauthorized
	}
	m.touchLocked(t, now)
	return Token{Account: t.owner.acct, SessionID: t.sessionID}, nil
}

// Check returns the account of a token unspent or spent on sessionID,
// without spending it; it restarts the token's idle expiry.
func (m *MemoryTokens) Check(ctx context.Context, token, sessionID string) (string, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.liveLocked(token, now)
	if t == nil || !checks(t.sessionID, t.spending, sessionID) {
		return "", sserrors.ErrUnauthorized
	}
	m.touchLocked(t, now)
	return t.owner.acct.Name, nil
}

// checks is Check's rule: a token unspent (and not being spent), or spent
// on sessionID.
func checks(boundTo string, spending bool, sessionID string) bool {
	if boundTo == "" {
		return !spending
	}
	return boundTo == sessionID
}

// Spend reserves the token, creates its session and binds the token to it
// (see [TokenStore]). The token is held in memory while create runs, so
// only a Revoke or an expiry during create makes the binding fail. When
// create panics, the token is given back unused and the panic goes on.
func (m *MemoryTokens) Spend(ctx context.Context, token string, create func(context.Context, session.Account) (string, error), discard func(context.Context, string) error) error {
	now := m.now()
	m.mu.Lock()
	t := m.liveLocked(token, now)
	if t == nil || t.spending || t.sessionID != "" {
		m.mu.Unlock()
		return sserrors.ErrUnauthorized
	}
	t.spending = true
	m.touchLocked(t, now)
	acct := t.owner.acct
	m.mu.Unlock()

	created := false
	defer func() {
		if !created { // create panicked: give the token back unused
			m.mu.Lock()
			t.spending = false
			m.mu.Unlock()
		}
	}()
	id, err := create(ctx, acct)
	created = true

	m.mu.Lock()
	held := m.tokens[t.key] == t && t.spending // not revoked nor expired meanwhile
	if err != nil {
		t.spending = false
		m.mu.Unlock()
		return err
	}
	if !held {
		m.mu.Unlock()
		lost := sserrors.ErrUnauthorized.WithCause(errors.New("server: the token was revoked or expired while its session was created"))
		return errors.Join(lost, discard(context.WithoutCancel(ctx), id))
	}
	t.spending = false
	t.sessionID = id
	m.touchLocked(t, m.now())
	m.mu.Unlock()
	return nil
}

// Revoke deletes the token.
func (m *MemoryTokens) Revoke(ctx context.Context, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.tokens[sha256.Sum256([]byte(token))]; ok {
		m.removeLocked(t)
	}
	return nil
}

// Len returns the number of tokens held, expired ones not yet dropped
// included.
func (m *MemoryTokens) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tokens)
}

// accessTokens mints and checks the session access tokens that authorise the
// realtime socket. A token is base64url(AES-256-GCM(key, random nonce,
// padded account, additional data = session id)) with key derived from the
// secret by HKDF-SHA256: it shows neither the account (encrypted, padded
// to a multiple of 32 bytes so that its length says nothing either) nor
// the session (authenticated, never stored in the token). Stateless: any
// node holding the same secret accepts them; a token minted for another
// session or under another secret fails to open.
type accessTokens struct {
	secret []byte
}

// accessInfo separates the access-token key from every other use of the
// secret.
const accessInfo = "streamsession access token v2"

func (a accessTokens) aead() cipher.AEAD {
	key, err := hkdf.Key(sha256.New, a.secret, nil, accessInfo, 32)
	if err != nil {
		panic("server: hkdf: " + err.Error()) // only for a key length over 255×32 bytes
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("server: aes: " + err.Error()) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		panic("server: gcm: " + err.Error()) // AES has a 16-byte block
	}
	return aead
}

// accessPad is the block the account is padded to inside a token.
const accessPad = 32

func accessAD(sessionID string) []byte {
	return append([]byte(accessInfo+"\x00"), sessionID...)
}

func (a accessTokens) mint(account, sessionID string) string {
	n := 2 + len(account)
	plain := make([]byte, (n+accessPad-1)/accessPad*accessPad)
	binary.BigEndian.PutUint16(plain, uint16(len(account)))
	copy(plain[2:], account)
	return base64.RawURLEncoding.EncodeToString(a.aead().Seal(nil, nil, plain, accessAD(sessionID)))
}

// verify returns the account the token was minted for, and false when the
// token was not minted for sessionID under this secret.
func (a accessTokens) verify(token, sessionID string) (string, bool) {
	if sessionID == "" || len(token) > 4096 {
		return "", false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", false
	}
	plain, err := a.aead().Open(nil, nil, sealed, accessAD(sessionID))
	if err != nil || len(plain) < 2 {
		return "", false
	}
	n := int(binary.BigEndian.Uint16(plain))
	if 2+n > len(plain) || n == 0 {
		return "", false
	}
	return string(plain[2 : 2+n]), true
}

// randomString returns n bytes from crypto/rand, base64url encoded.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ShortHash is [session.ShortHash]: a short, stable, non-reversible label
// for a session id, for logs and metrics where the raw id must not appear.
func ShortHash(id string) string { return session.ShortHash(id) }
