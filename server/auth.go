package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/seal"
	"github.com/streamsession/streamsession/session"
)

// Accounts finds the account an API key (the X-Api-Key header) belongs to.
// Implementations are safe for concurrent use by multiple goroutines.
type Accounts interface {
	// LookupAPIKey returns the account of apiKey, and false when the key is
	// unknown.
	LookupAPIKey(apiKey string) (session.Account, bool)
}

// AccountNames is implemented by an [Accounts] that can also find an
// account by its name. Where a request carries only the account's name (a
// socket credential, a bearer token), the server resolves the name with it
// so that every hook and per-account callback receives the whole
// [session.Account]; without it the account has its name and a zero Plan.
// Implementations are safe for concurrent use by multiple goroutines.
type AccountNames interface {
	// LookupAccount returns the account named name, and false when there
	// is none.
	LookupAccount(name string) (session.Account, bool)
}

// ResolveAccount returns the account named name: the one accounts finds
// when it implements [AccountNames], else (or when it finds none) an
// Account with that name and a zero Plan.
func ResolveAccount(accounts Accounts, name string) session.Account {
	if n, ok := accounts.(AccountNames); ok {
		if acct, ok := n.LookupAccount(name); ok {
			return acct
		}
	}
	return session.Account{Name: name}
}

// AccountsByKey is an [Accounts] over a fixed map from API key to account.
// It is safe for concurrent use as long as nobody modifies the map.
type AccountsByKey map[string]session.Account

// LookupAPIKey returns the account of apiKey.
func (a AccountsByKey) LookupAPIKey(apiKey string) (session.Account, bool) {
	acct, ok := a[apiKey]
	return acct, ok
}

// LookupAccount returns the account named name; it implements
// [AccountNames] by a scan of the map, so it suits the few accounts a
// configuration file lists.
func (a AccountsByKey) LookupAccount(name string) (session.Account, bool) {
	for _, acct := range a {
		if acct.Name == name {
			return acct, true
		}
	}
	return session.Account{}, false
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
// created, and nothing else. Every method returns [sserrors.ErrUnauthorized]
// (wrapped or not) for a token that is unknown, revoked or expired, and a
// 503/400558 error when the store's backend fails.
//
// A token is outstanding from Mint until it expires (TTL after its last
// use) or is revoked, spent or not; an account holds at most its bound of
// outstanding tokens. Every method costs O(1) or O(log n) in the tokens of
// the token's own account: no call looks at another account's tokens.
//
// Spending a token is three small steps that the streaming.new handler
// sequences: Reserve holds the unused token, the handler creates the
// session, then Bind spends the token on it (or Release gives the token
// back when the session could not be created). The store never creates or
// stops a session.
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
	// Check returns the account name of a token spent on sessionID,
	// without changing it; it counts as a use. Any other token (unspent,
	// held by a Reserve, or spent on another session) is refused with
	// ErrUnauthorized. The realtime socket checks the bearer token a client
	// passes as session_token with it.
	Check(ctx context.Context, token, sessionID string) (string, error)
	// Reserve holds an unused token for the creation of its session and
	// returns the hold, which carries the token's account. While held, the
	// token is refused by a second Reserve and by Check (ErrUnauthorized);
	// a hold lapses by itself after the store's lease (a node that died
	// mid-way), and the token is unused again.
	Reserve(ctx context.Context, token string) (TokenHold, error)
	// Bind spends the token held by hold on sessionID. When the hold is no
	// longer the token's (the token was revoked or expired, or the hold
	// lapsed and another Reserve took it), Bind changes nothing and returns
	// ErrUnauthorized: the caller then stops the session it created.
	Bind(ctx context.Context, token string, hold TokenHold, sessionID string) error
	// Release gives the token held by hold back unused. A hold no longer
	// the token's is left alone; releasing twice is harmless.
	Release(ctx context.Context, token string, hold TokenHold) error
	// Revoke deletes the token. Revoking an unknown token does nothing.
	Revoke(ctx context.Context, token string) error
}

// TokenHold is what [TokenStore.Reserve] returns: the token's account and
// the name of this reservation, which Bind and Release present. It is a
// plain value.
type TokenHold struct {
	// Account is the account of the API key that minted the token.
	Account session.Account
	// ID names this reservation among the token's reservations.
	ID string
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
	// HoldTTL is how long a Reserve holds a token without Bind or Release.
	// The default is DefaultTokenHoldTTL.
	HoldTTL time.Duration
	// Now returns the current time. The default is time.Now.
	Now func() time.Time
}

// DefaultTokenHoldTTL is how long a reservation holds a bearer token while
// its session is created, for the stores that take no other value.
const DefaultTokenHoldTTL = time.Minute

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
	ttl     time.Duration
	holdTTL time.Duration
	maxFor  func(session.Account) int
	now     func() time.Time

	mu       sync.Mutex
	tokens   map[tokenKey]*memoryToken
	accounts map[string]*memoryAccount
	holds    uint64 // names the reservations
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
	hold       string    // the Reserve holding the token, "" when none
	holdEnds   time.Time // when that hold lapses
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
	if cfg.HoldTTL <= 0 {
		cfg.HoldTTL = DefaultTokenHoldTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemoryTokens{
		ttl: cfg.TTL, holdTTL: cfg.HoldTTL, maxFor: cfg.MaxPerAccount, now: cfg.Now,
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

// Check returns the account of a token spent on sessionID, without
// changing it; it restarts the token's idle expiry.
func (m *MemoryTokens) Check(ctx context.Context, token, sessionID string) (string, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.liveLocked(token, now)
	if t == nil || sessionID == "" || t.sessionID != sessionID {
		return "", sserrors.ErrUnauthorized
	}
	m.touchLocked(t, now)
	return t.owner.acct.Name, nil
}

// Reserve holds an unused token (see [TokenStore]); it restarts the
// token's idle expiry.
func (m *MemoryTokens) Reserve(ctx context.Context, token string) (TokenHold, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.liveLocked(token, now)
	if t == nil || t.sessionID != "" || (t.hold != "" && now.Before(t.holdEnds)) {
		return TokenHold{}, sserrors.ErrUnauthorized
	}
	m.holds++
	t.hold, t.holdEnds = ownerName(m.holds), now.Add(m.holdTTL)
	m.touchLocked(t, now)
	return TokenHold{Account: t.owner.acct, ID: t.hold}, nil
}

// heldLocked returns the token's entry when hold still holds it: its lease
// may have lapsed, as long as no other Reserve took the token since.
func (m *MemoryTokens) heldLocked(token string, hold TokenHold, now time.Time) *memoryToken {
	t := m.liveLocked(token, now)
	if t == nil || hold.ID == "" || t.hold != hold.ID {
		return nil
	}
	return t
}

// errTokenLost refuses the Bind of a token that is no longer held.
var errTokenLost = sserrors.ErrUnauthorized.WithCause(errors.New("server: the token was revoked, expired or taken while its session was created"))

// Bind spends the held token on sessionID (see [TokenStore]).
func (m *MemoryTokens) Bind(ctx context.Context, token string, hold TokenHold, sessionID string) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.heldLocked(token, hold, now)
	if t == nil || sessionID == "" {
		return errTokenLost
	}
	t.hold, t.sessionID = "", sessionID
	m.touchLocked(t, now)
	return nil
}

// Release gives the held token back unused (see [TokenStore]).
func (m *MemoryTokens) Release(ctx context.Context, token string, hold TokenHold) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.heldLocked(token, hold, now); t != nil {
		t.hold = ""
	}
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
	box *seal.Box
}

// accessInfo separates the access-token key from every other use of the
// secret.
const accessInfo = "streamsession access token v2"

// newAccessTokens builds the sealing of access tokens under secret, once.
func newAccessTokens(secret []byte) (accessTokens, error) {
	box, err := seal.New(secret, accessInfo)
	if err != nil {
		return accessTokens{}, err
	}
	return accessTokens{box: box}, nil
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
	return base64.RawURLEncoding.EncodeToString(a.box.Seal(nil, plain, accessAD(sessionID)))
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
	plain, err := a.box.Open(sealed, accessAD(sessionID))
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
//
// Deprecated: use [session.ShortHash]; this alias stays for code written
// against earlier versions of the server package.
func ShortHash(id string) string { return session.ShortHash(id) }
