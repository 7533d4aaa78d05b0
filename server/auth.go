package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
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
	// SessionID is the session the token created, empty until then.
	SessionID string
	// Claimed is true while a streaming.new with the token is in flight.
	Claimed bool
}

// TokenStore keeps the bearer tokens minted by streaming.create_token: a
// token authorises one streaming.new, then the calls naming the session it
// created. Every method returns [sserrors.ErrUnauthorized] (wrapped or not)
// for a token that is unknown or expired, and any other error when the
// store's backend fails.
//
// Implementations are safe for concurrent use by multiple goroutines.
// [NewMemoryTokens] is the in-memory one; several server nodes need a shared
// implementation.
type TokenStore interface {
	// Mint stores a new unused token for acct and returns it.
	Mint(ctx context.Context, acct session.Account) (string, error)
	// Get returns the token's record and counts this call as a use (it
	// restarts the token's idle expiry).
	Get(ctx context.Context, token string) (Token, error)
	// Claim reserves an unused token for one streaming.new. It refuses a
	// token already claimed or bound with ErrUnauthorized.
	Claim(ctx context.Context, token string) (Token, error)
	// Bind binds a claimed token to the session its streaming.new created.
	Bind(ctx context.Context, token, sessionID string) error
	// Unclaim makes a claimed token unused again (its streaming.new failed).
	Unclaim(ctx context.Context, token string) error
	// Revoke deletes the token. Revoking an unknown token does nothing.
	Revoke(ctx context.Context, token string) error
}

// MemoryTokensConfig configures [NewMemoryTokens]. Zero fields take the
// documented defaults.
type MemoryTokensConfig struct {
	// TTL is how long a token lives unused. The default is one hour.
	TTL time.Duration
	// MaxTokens bounds the tokens kept at once. When it is reached, expired
	// tokens are swept; if none expired, Mint fails with 429/400140 ("Exceed
	// rate limit"). The default is 100000.
	MaxTokens int
	// Now returns the current time. The default is time.Now.
	Now func() time.Time
}

// DefaultTokenTTL is how long a bearer token lives unused.
const DefaultTokenTTL = time.Hour

const defaultMaxTokens = 100_000

// MemoryTokens is a [TokenStore] in memory, for one server node. It keeps
// only a SHA-256 of each token, so a memory dump does not reveal tokens. It
// is bounded by MaxTokens and swept as it is used; it starts no goroutine.
// It is safe for concurrent use by multiple goroutines.
type MemoryTokens struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu     sync.Mutex
	tokens map[[sha256.Size]byte]*memoryToken
	mints  int // since the last sweep
}

type memoryToken struct {
	Token
	lastUsed time.Time
}

// NewMemoryTokens returns an empty in-memory token store.
func NewMemoryTokens(cfg MemoryTokensConfig) *MemoryTokens {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTokenTTL
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = defaultMaxTokens
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemoryTokens{ttl: cfg.TTL, max: cfg.MaxTokens, now: cfg.Now, tokens: make(map[[sha256.Size]byte]*memoryToken)}
}

// Mint stores a new unused token for acct.
func (m *MemoryTokens) Mint(ctx context.Context, acct session.Account) (string, error) {
	token := "sst_" + randomString(32)
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mints++
	if len(m.tokens) >= m.max || m.mints >= 1024 {
		m.sweepLocked(now)
	}
	if len(m.tokens) >= m.max {
		return "", errTooManyTokens
	}
	m.tokens[sha256.Sum256([]byte(token))] = &memoryToken{Token: Token{Account: acct}, lastUsed: now}
	return token, nil
}

func (m *MemoryTokens) sweepLocked(now time.Time) {
	m.mints = 0
	for k, t := range m.tokens {
		if now.Sub(t.lastUsed) >= m.ttl {
			delete(m.tokens, k)
		}
	}
}

// liveLocked returns the token's entry, deleting it when it has expired.
func (m *MemoryTokens) liveLocked(token string, now time.Time) (*memoryToken, [sha256.Size]byte, bool) {
	k := sha256.Sum256([]byte(token))
	t, ok := m.tokens[k]
	if !ok {
		return nil, k, false
	}
	if now.Sub(t.lastUsed) >= m.ttl {
		delete(m.tokens, k)
		return nil, k, false
	}
	return t, k, true
}

// Get returns the token's record and restarts its idle expiry.
func (m *MemoryTokens) Get(ctx context.Context, token string) (Token, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	t, _, ok := m.liveLocked(token, now)
	if !ok {
		return Token{}, sserrors.ErrUnauthorized
	}
	t.lastUsed = now
	return t.Token, nil
}

// Claim reserves an unused token for one streaming.new.
func (m *MemoryTokens) Claim(ctx context.Context, token string) (Token, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	t, _, ok := m.liveLocked(token, now)
	if !ok || t.Claimed || t.SessionID != "" {
		return Token{}, sserrors.ErrUnauthorized
	}
	t.Claimed = true
	t.lastUsed = now
	return t.Token, nil
}

// Bind binds a claimed token to sessionID.
func (m *MemoryTokens) Bind(ctx context.Context, token, sessionID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[sha256.Sum256([]byte(token))]
	if !ok || !t.Claimed {
		return sserrors.ErrUnauthorized
	}
	t.Claimed = false
	t.SessionID = sessionID
	t.lastUsed = m.now()
	return nil
}

// Unclaim makes a claimed token unused again.
func (m *MemoryTokens) Unclaim(ctx context.Context, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[sha256.Sum256([]byte(token))]
	if !ok || !t.Claimed {
		return sserrors.ErrUnauthorized
	}
	t.Claimed = false
	return nil
}

// Revoke deletes the token.
func (m *MemoryTokens) Revoke(ctx context.Context, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tokens, sha256.Sum256([]byte(token)))
	return nil
}

// Len returns the number of tokens held, expired ones not yet swept
// included.
func (m *MemoryTokens) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tokens)
}

// accessTokens mints and checks the session access tokens that authorise the
// realtime socket: "<base64url(account)>.<base64url(mac)>", where mac is
// HMAC-SHA256(secret, "streamsession access v1" 0 account 0 session id).
// Stateless: any node holding the same secret accepts them.
type accessTokens struct {
	secret []byte
}

func (a accessTokens) mac(account, sessionID string) []byte {
	h := hmac.New(sha256.New, a.secret)
	h.Write([]byte("streamsession access v1\x00"))
	h.Write([]byte(account))
	h.Write([]byte{0})
	h.Write([]byte(sessionID))
	return h.Sum(nil)
}

func (a accessTokens) mint(account, sessionID string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(account)) + "." + enc.EncodeToString(a.mac(account, sessionID))
}

// verify returns the account the token was minted for, and false when the
// token was not minted for sessionID under this secret.
func (a accessTokens) verify(token, sessionID string) (string, bool) {
	acctPart, macPart, ok := strings.Cut(token, ".")
	if !ok || sessionID == "" {
		return "", false
	}
	enc := base64.RawURLEncoding
	account, err := enc.DecodeString(acctPart)
	if err != nil {
		return "", false
	}
	got, err := enc.DecodeString(macPart)
	if err != nil {
		return "", false
	}
	if !hmac.Equal(got, a.mac(string(account), sessionID)) {
		return "", false
	}
	return string(account), true
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
