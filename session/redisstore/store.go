package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// Defaults of Config's zero values.
const (
	// DefaultPrefix is the hash tag of every key, the one the Redis limiter
	// uses by default (the two never share a key name).
	DefaultPrefix = "streamsession"
	// DefaultClaimTTL is how long a claimed deadline stays with the node
	// that claimed it.
	DefaultClaimTTL = 10 * time.Second
	// DefaultClosingGrace is how long a session may stay closing before the
	// cluster finishes its close.
	DefaultClosingGrace = 30 * time.Second
	// DefaultRetentionSlack is added to a closed session's retention before
	// Redis expires its record by itself.
	DefaultRetentionSlack = time.Minute
	// DefaultPollInterval bounds the wait Due asks for.
	DefaultPollInterval = 5 * time.Second
	// DefaultSubscribeWait bounds how long Watch waits for the event
	// subscription to be confirmed.
	DefaultSubscribeWait = 3 * time.Second
	// DefaultLossCheckInterval is how often a Store looks for the marker
	// that tells it Redis still holds its data.
	DefaultLossCheckInterval = 2 * time.Second
	// DefaultBatch is the page size of Range.
	DefaultBatch = 256
)

// maxIDLen bounds session ids, account names and node ids, which become
// parts of keys.
const maxIDLen = 512

// Config configures a Store. The zero value of every field is a documented
// default. Every node sharing a Redis must use the same Prefix and
// ClosingGrace.
type Config struct {
	// Prefix is the hash tag of every key ("{Prefix}:s:..."), so that all of
	// them live in one Redis Cluster slot. It must not contain '{' or '}'.
	// The default is DefaultPrefix.
	Prefix string
	// NodeID names this node in Redis. It must be unique among the nodes
	// alive at once. The default is 16 random bytes in hex.
	NodeID string
	// ClaimTTL is how long a deadline claimed by Due stays with this node:
	// if the session has not changed by then (the node died while acting),
	// another node finds it due again. The default is DefaultClaimTTL
	// (10 s).
	ClaimTTL time.Duration
	// ClosingGrace is how long a session may stay closing before Due
	// reports it as TimeoutOrphaned, so that a close whose caller gave up
	// or died (a Redis reply lost after the session went closing) is
	// finished. The default is DefaultClosingGrace (30 s).
	ClosingGrace time.Duration
	// CloseRetryAfter is how long a close begun through this node (Stop,
	// a timer) may stay unfinished before the node finishes it: a close
	// cut by a Redis failure or failover (the closing written but its
	// reply lost, or the release or the closed after it failing) is
	// finished within CloseRetryAfter plus one LossCheckInterval of Redis
	// answering again, rather than after ClosingGrace. The default is
	// DefaultCloseRetryAfter (1 s).
	CloseRetryAfter time.Duration
	// RetentionSlack is added to a closed session's Retention to make the
	// expiry Redis applies to its record, so that a closed session is
	// forgotten even when no node is left to forget it. The default is
	// DefaultRetentionSlack (1 minute).
	RetentionSlack time.Duration
	// PollInterval is the longest wait Due asks for, so that a deadline
	// announced while this node's event subscription was down is found
	// anyway. The default is DefaultPollInterval (5 s).
	PollInterval time.Duration
	// SubscribeWait bounds how long Watch waits for Redis to confirm the
	// event subscription; past it Watch returns and the subscription goes
	// on in the background. The default is DefaultSubscribeWait (3 s).
	SubscribeWait time.Duration
	// Batch is the page size of Range. The default is DefaultBatch (256).
	Batch int
	// MaxClosedPerAccount bounds the closed sessions of one account kept
	// for their retention window: past it, the oldest are forgotten (10006)
	// when another closes. The default is
	// session.DefaultMaxClosedPerAccount (1,000); negative means no bound.
	MaxClosedPerAccount int
	// LossCheckInterval is how often the Store checks that Redis still
	// holds its data (a marker key it writes at Watch): when the marker is
	// gone or replaced (Redis flushed, or restarted without persistence),
	// the sessions this node knew of that vanished get closing and closed
	// with session.ReasonStoreLost, and OnDataLoss is called. The default
	// is DefaultLossCheckInterval (2 s).
	LossCheckInterval time.Duration
	// WaitReplicas, when positive, makes a transition into closed (the
	// last write of a session's end) return only once that many replicas
	// hold it and every write before it (Redis WAIT, up to WaitTimeout),
	// so that a failover to a replica does not bring back a session whose
	// stop was answered. The creation's WAIT is the limiter's (its Keep
	// comes after Insert: see redislimiter.Config.WaitReplicas). Fewer
	// replicas acknowledging in time is not an error (the change is on the
	// master); OnWaitShort hears of it. With no replica in sync every such
	// call waits WaitTimeout. The default, 0, waits for nothing: Redis
	// replicates asynchronously and a failover may lose the last writes.
	WaitReplicas int
	// WaitTimeout bounds each WAIT. The default is 1 s.
	WaitTimeout time.Duration
	// OnWaitShort, when set, is called when a WAIT ended with fewer than
	// WaitReplicas acknowledgements (acked) or failed (err).
	OnWaitShort func(acked int, err error)
	// OnDataLoss, when set, is called from the Store's goroutine each time
	// it finds that Redis lost its data, after the sessions it knew of
	// were closed. It must not block for long.
	OnDataLoss func(DataLoss)
}

// Store is a session.Store in Redis, shared by every node that uses the
// same Redis and Prefix: a session created through one node is read,
// changed and listed through any other, every node's Manager hears of
// every change (Redis pub/sub), and each deadline fires once for the whole
// cluster. Sessions belong to the service, not to the node that created
// them: a node that dies ends none of them (see Shared). It is safe for
// concurrent use by multiple goroutines.
//
// A Store runs one goroutine, the event listener (started by Watch). Close
// stops it; the Manager does not close its Store, so close it after the
// Manager.
type Store struct {
	client redis.UniversalClient
	cfg    Config
	node   string

	prefix  string // "{Prefix}:s:"
	timers  string
	mine    string // this node's sessions
	channel string

	nonce atomic.Uint64

	watching atomic.Bool
	ps       *redis.PubSub

	// mu serialises the deliveries to the Manager and guards what follows.
	mu     sync.Mutex
	notify func(session.Event)
	known  map[string]*seen // the last event delivered of each session
	tombs  []tombstone      // the forgotten sessions in known, oldest first

	// marker is the value of the marker key this node last saw (see
	// loss.go); it is read and written by the loss checker only.
	marker string
	// lostSinceReport counts the open sessions resync found gone since the
	// last DataLoss report (guarded by mu).
	lostSinceReport int
	// cut are the closes begun through this node not seen finished (see
	// finish.go).
	cut cutCloses
	// resyncPending is set when a resync after a reconnection failed; the
	// loss checker runs it again.
	resyncPending atomic.Bool

	wake chan struct{}
	// next is the deadline (Unix ms) the timer loop waits for; MaxInt64
	// while Due runs, so that a deadline announced meanwhile wakes it.
	next atomic.Int64

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ session.SharedStore = (*Store)(nil)

// New returns a Store on client with cfg. It does not wait for Redis: a node may start while Redis is down. The client
// stays the caller's (Close does not close it); create it with
// ContextTimeoutEnabled so that every call returns by its context's
// deadline.
//
// Errors: an invalid cfg is a 400175 error.
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
	if cfg.NodeID == "" {
		var b [16]byte
		rand.Read(b[:])
		cfg.NodeID = hex.EncodeToString(b[:])
	}
	if len(cfg.NodeID) > maxIDLen || strings.ContainsAny(cfg.NodeID, ":") {
		return nil, invalid("NodeID longer than %d bytes or with a colon", maxIDLen)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.ClaimTTL, DefaultClaimTTL)
	def(&cfg.ClosingGrace, DefaultClosingGrace)
	def(&cfg.RetentionSlack, DefaultRetentionSlack)
	def(&cfg.PollInterval, DefaultPollInterval)
	def(&cfg.SubscribeWait, DefaultSubscribeWait)
	def(&cfg.LossCheckInterval, DefaultLossCheckInterval)
	def(&cfg.CloseRetryAfter, DefaultCloseRetryAfter)
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.MaxClosedPerAccount == 0 {
		cfg.MaxClosedPerAccount = session.DefaultMaxClosedPerAccount
	}
	switch {
	case cfg.ClaimTTL < time.Millisecond, cfg.ClosingGrace < time.Millisecond, cfg.PollInterval < time.Millisecond, cfg.LossCheckInterval < time.Millisecond:
		return nil, invalid("ClaimTTL, ClosingGrace, PollInterval and LossCheckInterval must be at least 1ms")
	case cfg.CloseRetryAfter < 0, cfg.RetentionSlack < 0, cfg.SubscribeWait < 0, cfg.Batch < 0, cfg.WaitReplicas < 0, cfg.WaitTimeout < 0:
		return nil, invalid("negative CloseRetryAfter, RetentionSlack, SubscribeWait, Batch, WaitReplicas or WaitTimeout")
	}
	p := "{" + cfg.Prefix + "}:s:"
	s := &Store{
		client:  client,
		cfg:     cfg,
		node:    cfg.NodeID,
		prefix:  p,
		timers:  p + "timers",
		mine:    p + "n:" + cfg.NodeID,
		channel: p + "events",
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		known:   make(map[string]*seen),
	}
	s.next.Store(math.MaxInt64)
	return s, nil
}

func invalid(format string, args ...any) error {
	return sserrors.ErrInvalidParameter.WithCause(fmt.Errorf("redisstore: "+format, args...))
}

// errUnavailable is the error of every call that could not reach Redis, or
// that ctx ended first: HTTP 503, code 400558 (API connection error), with
// a Retry-After, as for an unreachable limiter.
var errUnavailable = sserrors.ErrBackendUnavailable

// unavailable wraps a Redis failure (ctx errors included: errors.Is still
// finds them) into errUnavailable.
func unavailable(op string, err error) error {
	return errUnavailable.WithCause(fmt.Errorf("redisstore: %s: %w", op, err))
}

// NodeID returns the id this node's sessions carry.
func (s *Store) NodeID() string { return s.node }

// Shared implements session.SharedStore: it returns true. Sessions belong
// to the service: a node that dies (SIGKILL) ends none of its sessions. Its
// clients reopen their sockets through another node; the deadlines of its
// sessions sit in Redis, where any node's Due claims them; the Manager
// keeps each session's slot (limits.Limiter.Keep) once it is recorded, so
// that no node renews anything for an open session, and whichever node
// closes a session releases its slot.
func (s *Store) Shared() bool { return true }

// Config returns the configuration in use, defaults filled in.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) recKey(id string) string       { return s.prefix + "r:" + id }
func (s *Store) acctKey(account string) string { return s.prefix + "a:" + account }

// newNonce names one change of this node, so that a script that Redis ran
// twice (go-redis retries a command whose reply was lost) applies once.
func (s *Store) newNonce() string {
	return s.node + ":" + strconv.FormatUint(s.nonce.Add(1), 36)
}

func checkID(account, id string) error {
	if account == "" || id == "" || len(account) > maxIDLen || len(id) > maxIDLen {
		return sserrors.ErrSessionNotFound
	}
	return nil
}

// Watch implements session.Store: it subscribes to the cluster's events
// and delivers each session's events to fn once, in the order of its
// epochs, one call at a time: a change made through this node on the
// calling goroutine before the call returns (when the session's previous
// event was delivered already), the others from the Store's listener
// goroutine. It waits up to Config.SubscribeWait for Redis to
// confirm the subscription. It fails when called twice.
func (s *Store) Watch(fn func(session.Event)) error {
	if fn == nil {
		return errors.New("redisstore: Watch: nil function")
	}
	if !s.watching.CompareAndSwap(false, true) {
		return errors.New("redisstore: the Store already serves a Manager")
	}
	s.mu.Lock()
	s.notify = fn
	s.mu.Unlock()
	s.ps = s.client.Subscribe(context.Background(), s.channel)
	ready := make(chan struct{})
	// The first look at the marker is made before Watch returns, so that
	// a loss after it is noticed; if Redis does not answer within
	// SubscribeWait, the loss checker looks again.
	_, _ = s.checkMarker(max(s.cfg.SubscribeWait, time.Millisecond))
	s.wg.Add(2)
	go s.listen(ready)
	go s.watchLoss()
	t := time.NewTimer(s.cfg.SubscribeWait)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
	}
	return nil
}

// Insert implements session.Store. The session is owned by this node (see
// Range). An id in use fails with session.ErrExists; a Redis failure with
// 503/400558.
func (s *Store) Insert(ctx context.Context, rec session.Record) (session.Record, error) {
	if rec.ID == "" || rec.Account == "" || len(rec.ID) > maxIDLen || len(rec.Account) > maxIDLen ||
		rec.State != fsm.New || rec.Epoch != 1 || rec.Reason != session.ReasonNone ||
		rec.IdleTimeout < 0 || rec.DurationLimit < 0 || rec.JoinTimeout < 0 || rec.Retention < 0 || rec.CreatedAt.IsZero() {
		return session.Record{}, invalid("Insert: not a new record")
	}
	if err := ctx.Err(); err != nil {
		return session.Record{}, unavailable("insert", err)
	}
	nonce := s.newNonce()
	fields := insertFields(rec, s.node, nonce)
	created := nanos(rec.CreatedAt)
	var jd int64
	if rec.JoinTimeout > 0 {
		jd = ceilMs(created) + ceilMs(int64(rec.JoinTimeout))
	}
	args := make([]any, 0, 6+len(fields))
	args = append(args, rec.ID, rec.Account, nonce, jd, s.channel, itoa(created))
	args = append(args, fields...)
	keys := []string{s.recKey(rec.ID), s.acctKey(rec.Account), s.timers, s.mine}
	res, err := insertScript.Run(ctx, s.client, keys, args...).Int64()
	if err != nil {
		return session.Record{}, unavailable("insert", err)
	}
	if res != 0 {
		return session.Record{}, session.ErrExists
	}
	out := rec
	out.CreatedAt = fromNanos(created)
	out.StartedAt, out.ClosedAt, out.LastActivity = time.Time{}, time.Time{}, time.Time{}
	s.deliverLocal(session.Event{SessionID: out.ID, Account: out.Account, From: fsm.Unknown, To: fsm.New, Epoch: 1, At: out.CreatedAt})
	return out, nil
}

// Get implements session.Store.
func (s *Store) Get(ctx context.Context, account, id string) (session.Record, error) {
	if err := checkID(account, id); err != nil {
		return session.Record{}, err
	}
	m, err := s.client.HGetAll(ctx, s.recKey(id)).Result()
	if err != nil {
		return session.Record{}, unavailable("get", err)
	}
	if len(m) == 0 || m[fAccount] != account {
		return session.Record{}, sserrors.ErrSessionNotFound
	}
	st, err := decodeMap(id, m)
	if err != nil {
		return session.Record{}, sserrors.ErrInternalServerError.WithCause(err)
	}
	s.learn(st.Record)
	return st.Record, nil
}

// List implements session.Store, from any node: one round trip.
func (s *Store) List(ctx context.Context, account string) ([]session.Record, error) {
	if account == "" || len(account) > maxIDLen {
		return []session.Record{}, nil
	}
	res, err := listScript.Run(ctx, s.client, []string{s.acctKey(account)}, s.prefix).Slice()
	if err != nil {
		return nil, unavailable("list", err)
	}
	out := make([]session.Record, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		st, err := decodeFlat(id, res[i+1])
		if err != nil {
			return nil, sserrors.ErrInternalServerError.WithCause(err)
		}
		if st.Account == account && st.State.Open() {
			out = append(out, st.Record)
		}
	}
	// The index is in insertion order; sorting by time only matters for
	// clocks that went back (or nodes whose clocks disagree), and keeps
	// that order among equal times.
	slices.SortStableFunc(out, func(a, b session.Record) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}
