package server

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"sync"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
)

// Idempotency of streaming.new, after Stripe's Idempotency-Key.
//
// A streaming.new sent with the header Idempotency-Key (1 to
// MaxIdempotencyKeyBytes bytes) is remembered for the caller: the account
// when it called with its API key, the one bearer token it was sent with
// otherwise (see [IdempotencyKey.Scope]). A later call of the same caller
// with the same key and the same body gets
// the first answer again, byte for byte (status, Content-Type and body, plus
// the header Idempotent-Replayed: true), without creating a session or
// taking a slot. The same key with another body answers 400/400175. Two
// calls with one key at the same time create one session: the second waits
// for the first's answer (bounded by its context) and replays it.
//
// Bodies are compared by the SHA-256 of the exact request body bytes, so a
// body re-encoded with other spacing or field order is another body. Only
// successful answers (HTTP 200) are stored: a refusal (10007, 10014, a 503,
// ...) leaves no trace, so a retry runs again instead of being refused for
// the key's lifetime. The replay is decided before a bearer token is spent:
// a caller whose reply was lost retries with the same token and key and gets
// the replay, not 401.
//
// When the store cannot be reached, a keyed streaming.new answers
// 503/400558 with Retry-After and creates nothing (fail closed: the key
// could not protect the call); a call without the header never uses the
// store.

// IdempotencyHeader is the request header that makes streaming.new
// idempotent.
const IdempotencyHeader = "Idempotency-Key"

// ReplayedHeader marks an answer replayed from an earlier call.
const ReplayedHeader = "Idempotent-Replayed"

// MaxIdempotencyKeyBytes bounds an Idempotency-Key; a longer or empty key
// answers 400/400175.
const MaxIdempotencyKeyBytes = 255

// DefaultIdempotencyTTL is how long a key is kept after its call answered.
const DefaultIdempotencyTTL = 24 * time.Hour

// finishTimeout bounds the Finish of a call, which outlives its request.
const finishTimeout = 5 * time.Second

// DefaultMaxKeysPerAccount bounds the stored answers one account holds in
// an IdempotencyStore (MemoryIdempotency, server/redisidem).
const DefaultMaxKeysPerAccount = 10_000

// IdempotencyKey names one Idempotency-Key of one account, with the hash of
// the request body it was first sent with. It is a plain value. It holds the
// key itself; stores keep only a hash of it.
type IdempotencyKey struct {
	Account string
	// Scope narrows the key within the account: empty for the account's
	// API key, else a name of the bearer token the key was sent with, so
	// that no other token (nor the API key) ever receives its answer.
	Scope    string
	Key      string
	BodyHash [sha256.Size]byte
}

// ID returns the SHA-256 that names k within its account: that of Key
// alone when Scope is empty, else that of a "t", Scope and Key separated
// by NUL bytes (which a header value cannot hold, so no two scopes meet).
// Stores key their entries by Account and ID, and keep neither Key nor
// Scope.
func (k IdempotencyKey) ID() [sha256.Size]byte {
	if k.Scope == "" {
		return sha256.Sum256([]byte(k.Key))
	}
	return sha256.Sum256([]byte("t\x00" + k.Scope + "\x00" + k.Key))
}

// StoredAnswer is the answer kept for a key and replayed. It is a plain
// value; its Body is never modified once stored.
type StoredAnswer struct {
	Status      int
	ContentType string
	Body        []byte
}

// Reservation is what [IdempotencyStore.Begin] returns: either an answer
// to replay, or the right to run the call (Owner), which the caller must
// give back with Finish. It is a plain value.
type Reservation struct {
	// Replay, when non-nil, is the stored answer to send again.
	Replay *StoredAnswer
	// Owner identifies this call's in-flight marker for Finish.
	Owner string
}

// IdempotencyStore keeps the Idempotency-Keys of streaming.new.
// Implementations are safe for concurrent use by multiple goroutines;
// [NewMemoryIdempotency] is the one for a single node, package
// server/redisidem the one several nodes share.
type IdempotencyStore interface {
	// Begin looks k up. When an answer is stored under k with the same body
	// hash, it returns it as Replay. When the key is unknown, it takes the
	// in-flight marker and returns its Owner: the caller runs the call and
	// must then call Finish. When another call holds the marker with the
	// same body hash, it waits for that call to finish (or for ctx) and
	// looks again. A stored answer or marker with another body hash is
	// refused with [sserrors.ErrInvalidParameter] (400/400175). Any other
	// error is a backend failure.
	Begin(ctx context.Context, k IdempotencyKey) (Reservation, error)
	// Finish ends the call that holds owner's marker: a non-nil answer is
	// stored under k for the store's TTL; nil frees the key, so the next
	// call with it runs again. A marker no longer held by owner (its lease
	// lapsed and another call took the key) is left alone.
	Finish(ctx context.Context, k IdempotencyKey, owner string, answer *StoredAnswer) error
}

// IdempotencyConfig configures idempotent streaming.new in [Config]. Zero
// fields take the documented defaults.
type IdempotencyConfig struct {
	// Store keeps the keys. The default is NewMemoryIdempotency with TTL and
	// the Server's Clock; several nodes need a shared store
	// (server/redisidem).
	Store IdempotencyStore
	// TTL is how long a key is kept, for the default Store. The default is
	// DefaultIdempotencyTTL (24 h).
	TTL time.Duration
	// MaxKeysPerAccount bounds the stored answers of one account, for the
	// default Store (see [MemoryIdempotencyConfig]). The default is
	// DefaultMaxKeysPerAccount (10,000).
	MaxKeysPerAccount int
	// FinishFailed, when set, is called when the Store could not record
	// the end of a call (a backend failure). The answer still reaches the
	// caller; with a stored success lost, a retry may create a second
	// session once the in-flight marker's lease lapses. It never receives
	// the key.
	FinishFailed func(error)
}

// store returns c.Store, or else a MemoryIdempotency with c.TTL on clock
// (nil: the real clock).
func (c IdempotencyConfig) store(clock interface{ Now() time.Time }) IdempotencyStore {
	if c.Store != nil {
		return c.Store
	}
	cfg := MemoryIdempotencyConfig{TTL: c.TTL, MaxKeysPerAccount: c.MaxKeysPerAccount}
	if clock != nil {
		cfg.Now = clock.Now
	}
	return NewMemoryIdempotency(cfg)
}

// idempotent is the Idempotency-Key middleware of streaming.new. It runs
// after authentication and the request budget, before next (which spends a
// bearer token and creates the session): with an Idempotency-Key it replays
// a stored answer, or runs next, recording what it writes, stores the
// answer when it is a success, and then sends it; without the header it is
// next.
func (s *Server) idempotent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values, keyed := r.Header[http.CanonicalHeaderKey(IdempotencyHeader)]
		if !keyed {
			next.ServeHTTP(w, r)
			return
		}
		req := callerOf(r)
		if len(values) != 1 || values[0] == "" || len(values[0]) > MaxIdempotencyKeyBytes {
			s.fail(w, r, *req, sserrors.ErrInvalidParameter)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			// A body that cannot be read is answered as decode answers it
			// on every endpoint (too large, too slow, cut).
			r.Body = io.NopCloser(failingReader{err})
			s.refuse(w, r, *req, decode(r, &struct{}{}))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		k := IdempotencyKey{Account: req.account.Name, Scope: tokenScope(req.token), Key: values[0], BodyHash: sha256.Sum256(body)}
		ctx := r.Context()
		res, err := s.idem.Begin(ctx, k)
		if err != nil {
			if _, ok := sserrors.As(err); !ok {
				err = errUnavailable.WithCause(err)
			}
			s.fail(w, r, *req, err)
			return
		}
		if res.Replay != nil {
			w.Header().Set(ReplayedHeader, "true")
			writeAnswer(w, *res.Replay)
			return
		}
		// Finish runs even when the caller went away, within its own bound
		// counted from when next returns (not from Begin: a slow next must
		// not leave Finish no time, and the key in flight until its lease).
		finish := func(answer *StoredAnswer) error {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
			defer cancel()
			return s.idem.Finish(fctx, k, res.Owner, answer)
		}
		rec := &recorder{ResponseWriter: w}
		finished := false
		defer func() {
			if !finished { // next panicked: free the key
				_ = finish(nil)
			}
		}()
		next.ServeHTTP(rec, r)
		finished = true
		answer := rec.answer()
		if err := finish(answer); err != nil && s.idemFailed != nil {
			s.idemFailed(err)
		}
		rec.flush()
	})
}

// tokenScope is the Scope of the Idempotency-Keys sent with a bearer
// token: the SHA-256 of the token in hex, so that no other token, nor the
// API key, meets them. It is empty for the API key.
func tokenScope(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// writeAnswer writes a stored answer as it was stored.
func writeAnswer(w http.ResponseWriter, a StoredAnswer) {
	w.Header().Set("Content-Type", a.ContentType)
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

// recorder holds what a handler writes (its headers go to the real
// ResponseWriter's map at once; status and body are held) until flush, so
// that the answer is stored before the caller can see it.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}

func (rec *recorder) Write(p []byte) (int, error) {
	rec.WriteHeader(http.StatusOK)
	return rec.body.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's controls.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// answer returns what was written as a StoredAnswer when it is a success
// (HTTP 200), else nil.
func (rec *recorder) answer() *StoredAnswer {
	if rec.status != http.StatusOK {
		return nil
	}
	return &StoredAnswer{Status: rec.status, ContentType: rec.Header().Get("Content-Type"), Body: bytes.Clone(rec.body.Bytes())}
}

// flush sends what was recorded.
func (rec *recorder) flush() {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	rec.ResponseWriter.WriteHeader(rec.status)
	_, _ = rec.ResponseWriter.Write(rec.body.Bytes())
}

// failingReader fails every Read with err.
type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// MemoryIdempotencyConfig configures [NewMemoryIdempotency]. Zero fields
// take the documented defaults.
type MemoryIdempotencyConfig struct {
	// TTL is how long a key is kept after its call answered. The default
	// is DefaultIdempotencyTTL (24 h).
	TTL time.Duration
	// MaxKeysPerAccount bounds the stored answers of one account; at the
	// bound, the account's oldest key is forgotten (it is the least likely
	// to be retried) rather than a new call refused. The default is
	// DefaultMaxKeysPerAccount.
	MaxKeysPerAccount int
	// Now returns the current time. The default is time.Now.
	Now func() time.Time
}

// MemoryIdempotency is an [IdempotencyStore] in memory, for one node. It
// keeps SHA-256 hashes of the keys, not the keys. Expired entries are swept
// as calls arrive (each call does O(1) work amortised) and every account
// holds at most MaxKeysPerAccount answers; it starts no goroutine. It is
// safe for concurrent use by multiple goroutines.
type MemoryIdempotency struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu       sync.Mutex
	entries  map[memIdemKey]*memIdemEntry
	byAge    *list.List // stored entries, oldest first (expiry order: one TTL)
	accounts map[string]*list.List
	seq      uint64
}

type memIdemKey struct {
	account string
	key     [sha256.Size]byte
}

type memIdemEntry struct {
	id       memIdemKey
	body     [sha256.Size]byte
	owner    string
	done     chan struct{} // closed when the in-flight call finishes
	answer   *StoredAnswer // nil while in flight
	expires  time.Time
	age, acc *list.Element
}

// NewMemoryIdempotency returns an empty in-memory store.
func NewMemoryIdempotency(cfg MemoryIdempotencyConfig) *MemoryIdempotency {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultIdempotencyTTL
	}
	if cfg.MaxKeysPerAccount <= 0 {
		cfg.MaxKeysPerAccount = DefaultMaxKeysPerAccount
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemoryIdempotency{
		ttl: cfg.TTL, max: cfg.MaxKeysPerAccount, now: cfg.Now,
		entries: make(map[memIdemKey]*memIdemEntry), byAge: list.New(), accounts: make(map[string]*list.List),
	}
}

// Begin implements [IdempotencyStore].
func (m *MemoryIdempotency) Begin(ctx context.Context, k IdempotencyKey) (Reservation, error) {
	id := memIdemKey{account: k.Account, key: k.ID()}
	for {
		if err := ctx.Err(); err != nil {
			return Reservation{}, err
		}
		m.mu.Lock()
		m.sweepLocked(m.now())
		e, ok := m.entries[id]
		switch {
		case !ok:
			m.seq++
			e = &memIdemEntry{id: id, body: k.BodyHash, owner: ownerName(m.seq), done: make(chan struct{})}
			m.entries[id] = e
			m.mu.Unlock()
			return Reservation{Owner: e.owner}, nil
		case e.body != k.BodyHash:
			m.mu.Unlock()
			return Reservation{}, sserrors.ErrInvalidParameter
		case e.answer != nil:
			a := *e.answer
			m.mu.Unlock()
			return Reservation{Replay: &a}, nil
		}
		done := e.done
		m.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return Reservation{}, ctx.Err()
		}
	}
}

func ownerName(seq uint64) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b []byte
	for {
		b = append(b, digits[seq%36])
		if seq /= 36; seq == 0 {
			return string(b)
		}
	}
}

// Finish implements [IdempotencyStore].
func (m *MemoryIdempotency) Finish(ctx context.Context, k IdempotencyKey, owner string, answer *StoredAnswer) error {
	id := memIdemKey{account: k.Account, key: k.ID()}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	if !ok || e.answer != nil || e.owner != owner {
		return nil
	}
	close(e.done)
	if answer == nil {
		delete(m.entries, id)
		return nil
	}
	a := *answer
	a.Body = bytes.Clone(answer.Body)
	e.answer, e.expires = &a, now.Add(m.ttl)
	e.age = m.byAge.PushBack(e)
	acc := m.accounts[id.account]
	if acc == nil {
		acc = list.New()
		m.accounts[id.account] = acc
	}
	e.acc = acc.PushBack(e)
	if acc.Len() > m.max {
		m.removeLocked(acc.Front().Value.(*memIdemEntry))
	}
	return nil
}

// sweepLocked forgets the stored answers that have expired, oldest first.
func (m *MemoryIdempotency) sweepLocked(now time.Time) {
	for f := m.byAge.Front(); f != nil; f = m.byAge.Front() {
		e := f.Value.(*memIdemEntry)
		if now.Before(e.expires) {
			return
		}
		m.removeLocked(e)
	}
}

func (m *MemoryIdempotency) removeLocked(e *memIdemEntry) {
	delete(m.entries, e.id)
	m.byAge.Remove(e.age)
	acc := m.accounts[e.id.account]
	acc.Remove(e.acc)
	if acc.Len() == 0 {
		delete(m.accounts, e.id.account)
	}
}

// Len returns the number of keys held, calls in flight included.
func (m *MemoryIdempotency) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
