package redislimiter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/rediswait"
	"github.com/streamsession/streamsession/limits"
)

// Defaults of Config's zero values.
const (
	// DefaultPrefix is the hash tag every key lives under.
	DefaultPrefix = "streamsession"
	// DefaultLeaseTTL is how long a lease lives unless renewed.
	DefaultLeaseTTL = 30 * time.Second
	// DefaultPurgeBatch is the most expired entries one call removes from
	// each structure it touches.
	DefaultPurgeBatch = 64
	// DefaultFlushers is how many scripts a Limiter has in flight at once.
	DefaultFlushers = 2
	// DefaultBatchSize is the most calls one script carries.
	DefaultBatchSize = 32
)

// maxIDLen bounds account names and session ids, which become parts of keys.
const maxIDLen = 512

// maxQuotaMinutes caps a plan's monthly minutes so that milliseconds stay
// exact in Lua's doubles (8,000 years a month is as good as unlimited).
const maxQuotaMinutes = 1 << 32

// Config configures a Limiter. The zero value of every field is a documented
// default. Every node sharing a Redis must use the same Prefix, Capacity and
// LeaseTTL.
type Config struct {
	// Prefix is the hash tag of every key ("{Prefix}:..."), so that all of
	// them live in one Redis Cluster slot. It must not contain '{' or '}'.
	// The default is DefaultPrefix.
	Prefix string
	// Capacity is the most slots the whole service (every node) holds at
	// once; past it Acquire refuses with limits.SessionFull. Zero means no
	// service-wide limit; negative is invalid.
	Capacity int
	// LeaseTTL is how long a slot lives unless its holder renews it. Holders
	// renew at most every LeaseTTL/3, so that two renewals may fail before
	// the slot is lost. A holder that dies loses its slots within LeaseTTL.
	// The default is DefaultLeaseTTL (30 s); it must be at least 10 ms.
	LeaseTTL time.Duration
	// Failure is what Acquire does when Redis cannot be reached. The default
	// is FailClosed.
	Failure limits.FailurePolicy
	// OnFailOpen, if set, is called with the Redis error each time FailOpen
	// admits a session without Redis; use it for a metric. It must be fast
	// and safe for concurrent use.
	OnFailOpen func(err error)
	// WaitReplicas, when positive, makes Keep (the last write of a
	// session's creation) return only once that many replicas hold every
	// write made before it (Redis WAIT, up to WaitTimeout), so that a
	// failover to a replica loses no slot of a session whose creation was
	// answered. Fewer replicas in time is not an error; OnWaitShort hears
	// of it. The default, 0, waits for nothing.
	WaitReplicas int
	// WaitTimeout bounds each WAIT. The default is 1 s.
	WaitTimeout time.Duration
	// OnWaitShort, when set, is called when a WAIT ended with fewer than
	// WaitReplicas acknowledgements (acked) or failed (err).
	OnWaitShort func(acked int, err error)
	// PurgeBatch bounds the expired entries one call removes from each
	// structure it touches, so that a backlog (a million slots left by dead
	// nodes) is worked off a little at a time and never blocks Redis. The
	// default is DefaultPurgeBatch (64).
	PurgeBatch int
	// Flushers is how many scripts this Limiter has in flight at once, each
	// on a connection of the client's pool. Calls made while all of them are
	// out wait and leave together, in one script, when one comes back (see
	// the package doc, Batching). The default is DefaultFlushers (2).
	Flushers int
	// BatchSize is the most calls one script carries; 1 sends every call in
	// a script of its own. The default is DefaultBatchSize (32).
	BatchSize int
	// Clock, when set, is the limiter's time instead of Redis TIME: every
	// script carries its reading (in whole milliseconds), and fail-open
	// leases are dated by it. Every node sharing a Redis must then read the
	// same clock, so production leaves it nil and takes the one time all
	// nodes share from Redis; tests set it to move time without waiting.
	Clock func() time.Time
}

// Limiter is a limits.Limiter whose state lives in Redis, shared by every
// node that uses the same Redis and Prefix. It is safe for concurrent use by
// multiple goroutines.
type Limiter struct {
	client redis.UniversalClient
	cfg    Config
	batch  int
	capKey string
	epoch  string
	prefix string // "{Prefix}:"

	// Script arguments that never change, converted once.
	ttlArg, capacityArg, batchArg any

	failOpen atomic.Uint64
	// synthetic holds the fail-open leases of this node not yet in Redis
	// (*failOpenLease), keyed by their service-wide member; Renew and Keep
	// adopt them into Redis.
	synthetic sync.Map

	// The batches (batch.go): calls waiting to be sent, and how many
	// flushers are out. Guarded by mu.
	mu        sync.Mutex
	queue     []*call
	flushing  int
	flushers  int
	batchSize int

	closed   atomic.Bool    // set under mu
	inflight sync.WaitGroup // the flushers' goroutines
}

var _ limits.Limiter = (*Limiter)(nil)

// A failOpenLease is a lease FailOpen granted on this node, not yet in
// Redis. released is set by a Release made while a Renew or Keep that adopts
// it is in flight: Redis may run the Release first, and the adoption must
// then be undone.
type failOpenLease struct{ released atomic.Bool }

// errClosed is the cause of every error after Close.
var errClosed = errors.New("redislimiter: limiter closed")

// New returns a Limiter on client with cfg, after checking cfg. It does not
// contact Redis: a node may start while Redis is down. The client stays the
// caller's: Close does not close it.
//
// Calls return by their context's deadline whatever the client: scripts run
// on the Limiter's own goroutines while callers wait for their answer or
// their deadline. With a client created with ContextTimeoutEnabled a script
// is abandoned at the latest deadline of the calls it carries; otherwise it
// lasts until the client's ReadTimeout, and Close waits for it.
func New(client redis.UniversalClient, cfg Config) (*Limiter, error) {
	if client == nil {
		return nil, invalid("nil client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, invalid("Prefix %q contains a brace", cfg.Prefix)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < 10*time.Millisecond {
		return nil, invalid("LeaseTTL %v is under 10ms", cfg.LeaseTTL)
	}
	if cfg.Capacity < 0 {
		return nil, invalid("negative Capacity %d", cfg.Capacity)
	}
	if !cfg.Failure.Valid() {
		return nil, invalid("unknown Failure %d", int(cfg.Failure))
	}
	if cfg.PurgeBatch == 0 {
		cfg.PurgeBatch = DefaultPurgeBatch
	}
	if cfg.PurgeBatch < 0 {
		return nil, invalid("negative PurgeBatch %d", cfg.PurgeBatch)
	}
	if cfg.WaitReplicas < 0 || cfg.WaitTimeout < 0 {
		return nil, invalid("negative WaitReplicas %d or WaitTimeout %v", cfg.WaitReplicas, cfg.WaitTimeout)
	}
	if cfg.Flushers == 0 {
		cfg.Flushers = DefaultFlushers
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Flushers < 0 || cfg.BatchSize < 0 {
		return nil, invalid("negative Flushers %d or BatchSize %d", cfg.Flushers, cfg.BatchSize)
	}
	p := "{" + cfg.Prefix + "}:"
	l := &Limiter{
		client: client,
		cfg:    cfg,
		batch:  cfg.PurgeBatch,
		prefix: p,
		capKey: p + "cap",
		epoch:  p + "epoch",

		flushers:  cfg.Flushers,
		batchSize: cfg.BatchSize,

		ttlArg:      strconv.FormatInt(cfg.LeaseTTL.Milliseconds(), 10),
		capacityArg: strconv.Itoa(cfg.Capacity),
		batchArg:    strconv.Itoa(cfg.PurgeBatch),
	}
	return l, nil
}

func invalid(format string, args ...any) error {
	return sserrors.ErrInvalidParameter.WithCause(fmt.Errorf("redislimiter: "+format, args...))
}

// names are the keys and the service-wide member of one session.
type names struct {
	slots, run, used string // the account's keys
	member           string // the session in the service-wide set
}

// names builds the session's keys and member in one allocation. Every key
// starts with the hash tag; the kind comes before the account so that any
// account name (colons and braces included) maps to distinct keys. The
// member is the account's length, the account and the session id, so that
// equal session ids of two accounts stay two slots.
func (l *Limiter) names(account, sessionID string) names {
	n := strconv.Itoa(len(account))
	var b strings.Builder
	b.Grow(3*len(l.prefix) + len("slots:run:used:") + 4*len(account) + len(n) + 1 + len(sessionID))
	b.WriteString(l.prefix)
	b.WriteString("slots:")
	b.WriteString(account)
	e1 := b.Len()
	b.WriteString(l.prefix)
	b.WriteString("run:")
	b.WriteString(account)
	e2 := b.Len()
	b.WriteString(l.prefix)
	b.WriteString("used:")
	b.WriteString(account)
	e3 := b.Len()
	b.WriteString(n)
	b.WriteByte(':')
	b.WriteString(account)
	b.WriteString(sessionID)
	s := b.String()
	return names{slots: s[:e1], run: s[e1:e2], used: s[e2:e3], member: s[e3:]}
}

// precheck refuses what no round trip can help: bad ids (400175), a ctx
// already done (its error), a closed limiter (ErrUnavailable).
func (l *Limiter) precheck(ctx context.Context, op, account, sessionID string) error {
	if err := checkIDs(account, sessionID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redislimiter: %s: %w", op, err)
	}
	if l.closed.Load() {
		return limits.ErrUnavailable.WithCause(errClosed)
	}
	return nil
}

func checkIDs(account, sessionID string) error {
	switch {
	case account == "":
		return invalid("empty account")
	case sessionID == "":
		return invalid("empty session id")
	case len(account) > maxIDLen:
		return invalid("account longer than %d bytes", maxIDLen)
	case len(sessionID) > maxIDLen:
		return invalid("session id longer than %d bytes", maxIDLen)
	}
	return nil
}

// Acquire checks the account's trial quota, then its plan's concurrency, then
// the service's capacity, and takes a slot when all three allow it; see
// limits.Limiter. It is one round trip, shared with the calls that wait with
// it (see the package doc, Batching).
//
// Acquiring again for a session id that holds a live slot returns that slot
// renewed, whatever the limits say now; a replayed script (go-redis resends a
// command whose reply it lost) never takes a second slot. When Acquire
// returns an error the script may still have run, now or later (a command
// queued in a paused Redis): the slot it took is the one the next Acquire for
// the same session id finds, or it expires after LeaseTTL. A plan's negative
// MaxConcurrent or MonthlyMinutes count as zero: refusals.
//
// Errors: an empty or over-long (512 bytes) account or session id is 400175
// and sends nothing; a ctx already done returns its error and sends nothing.
// A Redis failure, or a deadline that passes while Redis does not answer,
// wraps limits.ErrUnavailable (and the ctx error) under FailClosed; under
// FailOpen it grants a lease known to this node only, except when the caller
// cancelled ctx.
func (l *Limiter) Acquire(ctx context.Context, req limits.Request) (limits.Decision, error) {
	if err := l.precheck(ctx, "acquire", req.Account, req.SessionID); err != nil {
		return limits.Decision{}, err
	}
	trial, quota := "0", "0"
	if req.Plan.Trial {
		trial = "1"
		quota = strconv.FormatInt(min(max(int64(req.Plan.MonthlyMinutes), 0), maxQuotaMinutes)*60_000, 10)
	}
	nm := l.names(req.Account, req.SessionID)
	member := nm.member
	c := &call{kind: "a", nm: nm, args: []any{req.SessionID, member, max(req.Plan.MaxConcurrent, 0), trial, quota}}
	if err := l.do(ctx, c); err != nil {
		if errors.Is(err, errClosed) {
			// Closed meanwhile: no decision, and no fail-open either.
			return limits.Decision{}, limits.ErrUnavailable.WithCause(err)
		}
		return l.acquireFailed(ctx, req, member, err)
	}
	if code := c.r1; code != 0 {
		refused := limits.Limit(code)
		if refused != limits.TrialQuota && refused != limits.Concurrency && refused != limits.SessionFull {
			return l.acquireFailed(ctx, req, member, fmt.Errorf("redislimiter: acquire script answered %d", code))
		}
		return limits.Decision{Refused: refused}, nil
	}
	l.synthetic.Delete(member)
	return limits.Decision{Lease: limits.Lease{Account: req.Account, SessionID: req.SessionID, Expires: expiry(c.r2)}}, nil
}

// acquireFailed applies the failure policy to a failed acquire.
func (l *Limiter) acquireFailed(ctx context.Context, req limits.Request, member string, err error) (limits.Decision, error) {
	if l.cfg.Failure != limits.FailOpen || errors.Is(ctx.Err(), context.Canceled) {
		return limits.Decision{}, unavailable("acquire", err)
	}
	l.failOpen.Add(1)
	if l.cfg.OnFailOpen != nil {
		l.cfg.OnFailOpen(err)
	}
	l.synthetic.Store(member, new(failOpenLease))
	exp := l.localNow().Add(l.cfg.LeaseTTL)
	return limits.Decision{Lease: limits.Lease{Account: req.Account, SessionID: req.SessionID, Expires: exp.UTC()}}, nil
}

// Started starts counting a trial session's minutes against its account's
// month (split at UTC month boundaries when it runs across one); see
// limits.Limiter. Calling it again, or replaying it, does nothing; a session
// acquired under a paid plan counts nothing. For a lease that holds no live
// slot (released, expired, never granted) it counts nothing and returns an
// error wrapping limits.ErrLeaseExpired. A Redis failure wraps
// limits.ErrUnavailable under both policies: the session keeps running, its
// minutes uncounted.
func (l *Limiter) Started(ctx context.Context, lease limits.Lease) error {
	if err := l.precheck(ctx, "started", lease.Account, lease.SessionID); err != nil {
		return err
	}
	c := &call{kind: "s", nm: l.names(lease.Account, lease.SessionID), args: []any{lease.SessionID}}
	if err := l.do(ctx, c); err != nil {
		return unavailable("started", err)
	}
	if c.r1 == 2 {
		return fmt.Errorf("redislimiter: started: %w", limits.ErrLeaseExpired)
	}
	return nil
}

// Renew extends a live lease to LeaseTTL from now; see limits.Limiter. It
// returns an error wrapping limits.ErrLeaseExpired when the slot expired or
// was released (the slot may belong to someone else: close the session), and
// one wrapping limits.ErrUnavailable when Redis cannot be reached in time
// (keep the session running and renew again at the next heartbeat).
//
// A lease that Redis has no trace of because it lost its data (restarted
// without persistence, failed over to a replica that had not seen it,
// flushed) is put back, so that an outage never ends running sessions: Renew
// adopts a lease last renewed before the first slot of the current data set
// was granted, and a FailOpen lease of this node (unless a Release of it is
// made while the Renew is in flight: the Release wins). Adopted slots count against
// the limits again from then on, even where that exceeds them for a while; a
// trial session's minutes before the loss are lost with the data.
func (l *Limiter) Renew(ctx context.Context, lease limits.Lease) (limits.Lease, error) {
	if err := l.precheck(ctx, "renew", lease.Account, lease.SessionID); err != nil {
		return limits.Lease{}, err
	}
	nm := l.names(lease.Account, lease.SessionID)
	member := nm.member
	fo, adopt := l.adoption(member)
	var lexp int64
	if !lease.Expires.IsZero() {
		lexp = max(lease.Expires.UnixMilli(), 1)
	}
	c := &call{kind: "n", nm: nm, args: []any{lease.SessionID, member, adopt, lexp}}
	if err := l.do(ctx, c); err != nil {
		return limits.Lease{}, unavailable("renew", err)
	}
	if !l.adopted(ctx, lease.SessionID, nm, fo, c.r1 == 1) {
		return limits.Lease{}, fmt.Errorf("redislimiter: renew: %w", limits.ErrLeaseExpired)
	}
	lease.Expires = expiry(c.r2)
	return lease, nil
}

// Keep makes a live lease durable, so that it costs Redis nothing until its
// Release (no renewal, no expiry); see limits.Limiter. It is one round
// trip, shared with the calls that wait with it. Keeping twice or replaying
// the script does nothing more. It returns an error wrapping
// limits.ErrLeaseExpired when the slot expired or was released, and one
// wrapping limits.ErrUnavailable when Redis cannot be reached in time (the
// lease then still expires at its Expires unless renewed or kept). A
// FailOpen lease of this node is put into Redis, kept; a Release of it made
// while the Keep is in flight wins (Keep then returns ErrLeaseExpired).
//
// The account's keys lose their expiry while the account holds a kept slot
// and get it back at the release of its last one, so that a session that
// lasts longer than the keys' expiry keeps its slot and its trial start.
func (l *Limiter) Keep(ctx context.Context, lease limits.Lease) error {
	if err := l.precheck(ctx, "keep", lease.Account, lease.SessionID); err != nil {
		return err
	}
	nm := l.names(lease.Account, lease.SessionID)
	fo, adopt := l.adoption(nm.member)
	c := &call{kind: "k", nm: nm, args: []any{lease.SessionID, nm.member, adopt}}
	if err := l.do(ctx, c); err != nil {
		return unavailable("keep", err)
	}
	if !l.adopted(ctx, lease.SessionID, nm, fo, c.r1 == 1) {
		return fmt.Errorf("redislimiter: keep: %w", limits.ErrLeaseExpired)
	}
	if n := l.cfg.WaitReplicas; n > 0 {
		acked, err := rediswait.Barrier(ctx, l.client, l.prefix+"wait", n, l.cfg.WaitTimeout)
		if (err != nil || acked < n) && l.cfg.OnWaitShort != nil {
			l.cfg.OnWaitShort(acked, err)
		}
	}
	return nil
}

// adoption returns the fail-open lease of member not yet in Redis, if any,
// and the adopt argument of a Renew or Keep script.
func (l *Limiter) adoption(member string) (*failOpenLease, string) {
	if v, ok := l.synthetic.Load(member); ok {
		return v.(*failOpenLease), "1"
	}
	return nil, "0"
}

// adopted finishes a Renew or Keep that reached Redis with fo (nil: no
// fail-open lease; held: the script found or put the slot) and reports
// whether the lease holds its slot. The fail-open lease is in Redis now, or
// gone. A Release made meanwhile may have run before the script put the
// slot into Redis: the slot is then released again (a second release frees
// nothing more), best effort: if that fails too, a renewed slot expires, a
// kept one stays.
func (l *Limiter) adopted(ctx context.Context, sessionID string, nm names, fo *failOpenLease, held bool) bool {
	if fo == nil {
		return held
	}
	l.synthetic.CompareAndDelete(nm.member, fo)
	if !held || !fo.released.Load() {
		return held
	}
	_ = l.do(context.WithoutCancel(ctx), &call{kind: "r", nm: nm, args: []any{sessionID, nm.member}})
	return false
}

// Release frees the slot and stops counting the session's minutes; see
// limits.Limiter. Releasing twice, replaying the script, or releasing an
// expired lease frees nothing more and counts nothing more: the minutes of a
// session whose lease expired count up to its expiry. A Redis failure wraps
// limits.ErrUnavailable under both policies; the slot then expires after
// LeaseTTL.
func (l *Limiter) Release(ctx context.Context, lease limits.Lease) error {
	if err := l.precheck(ctx, "release", lease.Account, lease.SessionID); err != nil {
		return err
	}
	nm := l.names(lease.Account, lease.SessionID)
	member := nm.member
	if v, ok := l.synthetic.LoadAndDelete(member); ok {
		v.(*failOpenLease).released.Store(true)
	}
	if err := l.do(ctx, &call{kind: "r", nm: nm, args: []any{lease.SessionID, member}}); err != nil {
		return unavailable("release", err)
	}
	return nil
}

// Close makes every later call fail with limits.ErrUnavailable, answers the
// calls still waiting for a flusher the same way (they are never sent), and
// waits for the scripts already sent: until their answers, the latest
// deadline of their calls, or the client's ReadTimeout. It does not close the
// client. Closing twice is harmless.
func (l *Limiter) Close() error {
	l.mu.Lock()
	l.closed.Store(true)
	waiting := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, c := range waiting {
		c.err = errClosed
		close(c.done)
	}
	l.inflight.Wait()
	return nil
}

// FailOpenCount returns how many sessions FailOpen has admitted without
// Redis since New.
func (l *Limiter) FailOpenCount() uint64 { return l.failOpen.Load() }

// Config returns the configuration in use, defaults filled in.
func (l *Limiter) Config() Config { return l.cfg }

// unavailable wraps a Redis failure into the catalog's 400558 (HTTP 503).
func unavailable(op string, err error) error {
	return limits.ErrUnavailable.WithCause(fmt.Errorf("redislimiter: %s: %w", op, err))
}

// localNow is this node's reading of the limiter's clock, for fail-open
// leases made without Redis.
func (l *Limiter) localNow() time.Time {
	if l.cfg.Clock != nil {
		return l.cfg.Clock()
	}
	return time.Now()
}

func fromMs(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// expiry is a lease's Expires from the scripts' answer: the zero Time for a
// kept slot (0).
func expiry(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return fromMs(ms)
}
