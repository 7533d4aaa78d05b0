package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
)

// Manager runs streaming sessions: it creates them under the limiter's
// slots, moves them through new → connecting → connected → closing → closed
// on API calls and timers, releases each slot exactly once, and tells
// subscribers about every change.
//
// A Manager is safe for concurrent use by multiple goroutines. It runs a
// fixed number of goroutines whatever the number of sessions: one timer loop,
// one lease renewer and one per subscriber. Close stops them.
type Manager struct {
	limiter     limits.Limiter
	avatars     AvatarCatalog
	store       Store
	clock       Clock
	hooks       Hooks
	joinTimeout time.Duration
	retention   time.Duration
	defaultIdle time.Duration
	renewFixed  time.Duration
	subBuffer   int

	// calls counts the calls in flight that may change a session; Close
	// waits for them. closing, under callsMu, refuses new ones: a call
	// enters under the read lock, Close sets closing under the write lock,
	// so no call is added once Close waits.
	callsMu sync.RWMutex
	closing bool
	calls   sync.WaitGroup

	subMu   sync.Mutex
	subs    atomic.Pointer[[]*subscriber]
	subWG   sync.WaitGroup
	dropped atomic.Uint64

	renewMu    sync.Mutex
	renewEvery time.Duration // under renewMu; 0 while unknown
	renewWake  chan struct{}
	stop       chan struct{}
	loops      sync.WaitGroup

	// unkept is set for a SharedStore only: a recorded session's slot is
	// then kept (limits.Limiter.Keep) instead of renewed, and unkept holds
	// the slots whose Keep failed, for the renewer to retry.
	unkept *unkeptSlots

	closeOnce sync.Once
	closed    chan struct{}
}

// maxConflictRetries bounds the retries of a change that keeps losing races
// in a distributed Store.
const maxConflictRetries = 16

// NewManager returns a running Manager. It fails when Limiter or Avatars is
// missing, a duration is negative, DefaultIdleTimeout is outside its bounds,
// or the Store already serves another Manager.
func NewManager(cfg Config) (*Manager, error) {
	switch {
	case cfg.Limiter == nil:
		return nil, errors.New("session: Config.Limiter is required")
	case cfg.Avatars == nil:
		return nil, errors.New("session: Config.Avatars is required")
	case cfg.JoinTimeout < 0, cfg.Retention < 0, cfg.LeaseRenewInterval < 0, cfg.SubscriberBuffer < 0:
		return nil, errors.New("session: Config: negative duration or buffer")
	case cfg.DefaultIdleTimeout != 0 && (cfg.DefaultIdleTimeout < MinIdleTimeout || cfg.DefaultIdleTimeout > MaxIdleTimeout):
		return nil, fmt.Errorf("session: Config.DefaultIdleTimeout %v outside %v–%v", cfg.DefaultIdleTimeout, MinIdleTimeout, MaxIdleTimeout)
	}
	m := &Manager{
		limiter:     cfg.Limiter,
		avatars:     cfg.Avatars,
		store:       cfg.Store,
		clock:       cfg.Clock,
		hooks:       cfg.Hooks,
		joinTimeout: or(cfg.JoinTimeout, DefaultJoinTimeout),
		retention:   or(cfg.Retention, DefaultRetention),
		defaultIdle: or(cfg.DefaultIdleTimeout, DefaultIdleTimeout),
		renewFixed:  cfg.LeaseRenewInterval,
		subBuffer:   cfg.SubscriberBuffer,
		renewWake:   make(chan struct{}, 1),
		stop:        make(chan struct{}),
		closed:      make(chan struct{}),
	}
	if m.store == nil {
		m.store = NewMemoryStore(MemoryStoreConfig{})
	}
	if m.clock == nil {
		m.clock = SystemClock{}
	}
	if m.subBuffer == 0 {
		m.subBuffer = DefaultSubscriberBuffer
	}
	if ss, ok := m.store.(SharedStore); ok && ss.Shared() {
		m.unkept = &unkeptSlots{leases: make(map[string]limits.Lease)}
	}
	m.renewEvery = m.renewFixed
	m.subs.Store(new([]*subscriber))
	if err := m.store.Watch(m.publish); err != nil {
		return nil, err
	}
	m.loops.Add(2)
	go m.timerLoop()
	go m.renewLoop()
	return m, nil
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Create creates a session for acct in state new and returns it.
//
// It checks, in this order and consuming nothing on failure: opts
// (IdleTimeout outside 30 s–3600 s, or an empty account name: 400175); the
// avatar through the catalog (10012, 10013); then the limiter, with a fresh
// session id of 128 bits from crypto/rand: a refusal returns 10015, 10007 or
// 10014 (with a Retry-After), a limiter failure returns its error (wrapping
// limits.ErrUnavailable for an unreachable backend: 503/400558). After Close
// has begun it returns ErrClosed.
func (m *Manager) Create(ctx context.Context, acct Account, opts CreateOptions) (Info, error) {
	info, err := m.create(ctx, acct, opts)
	if err != nil && m.hooks.OnRefused != nil {
		m.hooks.OnRefused(acct, sserrors.CodeOf(err))
	}
	return info, err
}

func (m *Manager) create(ctx context.Context, acct Account, opts CreateOptions) (Info, error) {
	if acct.Name == "" {
		return Info{}, errEmptyAccount
	}
	idle := opts.IdleTimeout
	if idle == 0 {
		idle = m.defaultIdle
	} else if idle < MinIdleTimeout || idle > MaxIdleTimeout {
		return Info{}, errIdleTimeout
	}
	if len(opts.Label) > MaxLabelLen {
		return Info{}, errLabel
	}
	avatar, err := m.avatars.Resolve(ctx, acct.Name, opts.AvatarID)
	if err != nil {
		return Info{}, err
	}
	id := newID()
	if !m.enter() {
		return Info{}, ErrClosed
	}
	defer m.leave()

	req := limits.Request{Account: acct.Name, Plan: acct.Plan, SessionID: id}
	var d limits.Decision
	err = m.limit(LimiterAcquire, func() (err error) {
		d, err = m.limiter.Acquire(ctx, req)
		return err
	})
	if err != nil {
		// The limiter may have granted the slot and lost the answer (a
		// failover cut the reply): give it back, which is harmless when it
		// was never granted. In the background, so that a limiter that does
		// not answer does not hold the refusal.
		m.releaseLater(ctx, limits.Lease{Account: acct.Name, SessionID: id})
		return Info{}, err
	}
	if !d.Granted() {
		return Info{}, d.Refused.Err()
	}
	now := m.clock.Now()
	m.observeLease(d.Lease, now)
	rec, err := m.store.Insert(ctx, Record{
		Info: Info{
			ID:                 id,
			Account:            acct.Name,
			AvatarID:           avatar.ID,
			State:              fsm.New,
			Epoch:              1,
			Paid:               !acct.Plan.Trial,
			PlanName:           acct.Plan.Name,
			CreatedAt:          now,
			IdleTimeout:        idle,
			DisableIdleTimeout: opts.DisableIdleTimeout,
			DurationLimit:      acct.Plan.SessionDurationLimit,
			Label:              opts.Label,
		},
		JoinTimeout: m.joinTimeout,
		Retention:   m.retention,
	})
	if err != nil {
		m.releaseAfterFailedCreate(ctx, limits.Lease{Account: acct.Name, SessionID: id})
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return Info{}, err
		}
		return Info{}, internal(err)
	}
	if m.unkept != nil {
		if err := m.keepSlot(ctx, d.Lease); err != nil {
			return Info{}, err
		}
	}
	return rec.Info, nil
}

// keepSlot makes the slot of a session just recorded in a SharedStore
// durable: from now on any node may close the session and release its
// slot, so it needs no renewal. A lease that expired before it was kept
// (the insert outlasted the lease TTL) no longer holds a slot: the session
// is closed (ReasonLeaseLost) and Create fails with the limiter's 503. Any
// other failure, ctx ending included (Create returns by its caller's
// deadline), leaves the lease to the renewer, which retries the Keep every
// round until it succeeds or the lease is lost.
func (m *Manager) keepSlot(ctx context.Context, lease limits.Lease) error {
	err := m.keep(ctx, lease)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, limits.ErrLeaseExpired):
		_, _ = m.closeSession(uncancellable(ctx), lease.Account, lease.SessionID, ReasonLeaseLost, 0)
		return limits.ErrUnavailable.WithCause(err)
	}
	m.unkept.add(lease)
	return nil
}

// internal wraps an error that has no catalog code as 500000, keeping it as
// the cause.
func internal(err error) error {
	if _, ok := sserrors.As(err); ok {
		return err
	}
	return sserrors.ErrInternalServerError.WithCause(err)
}

// newID returns 128 bits from crypto/rand as 32 hex digits.
func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (Go 1.24): it crashes the program instead
	var h [32]byte
	hex.Encode(h[:], b[:])
	return string(h[:])
}

// Get returns the session. An unknown id and another account's session both
// fail with 10006. A closed session is returned (state closed) until its
// retention window ends.
func (m *Manager) Get(ctx context.Context, account, id string) (Info, error) {
	rec, err := m.store.Get(ctx, account, id)
	if err != nil {
		return Info{}, err
	}
	return rec.Info, nil
}

// List returns account's open sessions (new, connecting, connected), oldest
// first.
func (m *Manager) List(ctx context.Context, account string) ([]Info, error) {
	recs, err := m.store.List(ctx, account)
	if err != nil {
		return nil, err
	}
	out := make([]Info, len(recs))
	for i, r := range recs {
		out[i] = r.Info
	}
	return out, nil
}

// Start moves a new session to connecting (streaming.start) and, for a trial
// session, tells the limiter that its minutes now count. In any other state
// it fails with that state's 10002–10005 and changes nothing; an unknown
// session fails with 10006. A limiter failure to count the minutes does not
// fail the call (it is reported to Hooks.OnLimiter).
func (m *Manager) Start(ctx context.Context, account, id string) (Info, error) {
	if !m.enter() {
		return Info{}, ErrClosed
	}
	defer m.leave()
	rec, _, err := m.transition(ctx, account, id, Change{Event: fsm.EventStart, At: m.clock.Now()})
	if err != nil {
		return Info{}, err
	}
	if !rec.Paid {
		ctx, lease := uncancellable(ctx), limits.Lease{Account: account, SessionID: id}
		_ = m.limit(LimiterStarted, func() error { return m.limiter.Started(ctx, lease) })
	}
	return rec.Info, nil
}

// Join records that the client's realtime socket opened: connecting →
// connected. On a session already connected it is a successful no-op that
// counts as activity (a reconnecting socket). In any other state it fails
// with that state's 10001, 10004 or 10005 and changes nothing.
func (m *Manager) Join(ctx context.Context, account, id string) (Info, error) {
	if !m.enter() {
		return Info{}, ErrClosed
	}
	defer m.leave()
	now := m.clock.Now()
	rec, _, err := m.transition(ctx, account, id, Change{Event: fsm.EventJoin, At: now})
	if err == nil {
		return rec.Info, nil
	}
	if !errors.Is(err, sserrors.ErrSessionStateConnected) {
		return Info{}, err
	}
	return m.touch(ctx, account, id, now, fsm.CmdKeepAlive)
}

// Command checks cmd against the command policy (fsm.Allow) for the
// session's current state and returns the session: ice in new and
// connecting; task, interrupt, keep_alive, start_listening, stop_listening
// in connected. Task, keep_alive and interrupt count as activity (they push
// the idle deadline back). CmdStart and CmdStop do what Start and Stop do.
// A command the state does not accept fails with that state's 10001–10005
// and changes nothing; an unknown session fails with 10006; a Command
// outside the enum fails with 400175.
func (m *Manager) Command(ctx context.Context, account, id string, cmd fsm.Command) (Info, error) {
	switch cmd {
	case fsm.CmdStart:
		return m.Start(ctx, account, id)
	case fsm.CmdStop:
		return m.Stop(ctx, account, id)
	case fsm.CmdTask, fsm.CmdKeepAlive, fsm.CmdInterrupt:
		return m.touch(ctx, account, id, m.clock.Now(), cmd)
	case fsm.CmdICE, fsm.CmdStartListening, fsm.CmdStopListening:
		rec, err := m.store.Get(ctx, account, id)
		if err != nil {
			return Info{}, err
		}
		if err := fsm.Allow(rec.State, cmd); err != nil {
			return Info{}, err
		}
		return rec.Info, nil
	}
	return Info{}, sserrors.ErrInvalidParameter
}

// Touch records activity from the realtime socket (a client message): it
// pushes a connected session's idle deadline back. On any other state it
// fails with that state's error and changes nothing.
func (m *Manager) Touch(ctx context.Context, account, id string) error {
	_, err := m.touch(ctx, account, id, m.clock.Now(), fsm.CmdKeepAlive)
	return err
}

// touch records activity for an activity command cmd (allowed only in
// connected).
func (m *Manager) touch(ctx context.Context, account, id string, at time.Time, cmd fsm.Command) (Info, error) {
	rec, err := m.store.Touch(ctx, account, id, at)
	if err != nil {
		return Info{}, err
	}
	if err := fsm.Allow(rec.State, cmd); err != nil {
		return Info{}, err
	}
	return rec.Info, nil
}

// Stop closes a session (streaming.stop): new, connecting or connected →
// closing → closed. It returns once the session is closed and its slot
// released, with the session as closed. Of concurrent Stops exactly one
// succeeds; the others, and a Stop on a closing or closed session, fail
// with 10004 or 10005 (the state the session is in) and change nothing. A
// ctx cancelled once closing has begun does not interrupt the close. With a
// SharedStore, a release the limiter fails returns its error (wrapping
// limits.ErrUnavailable) and leaves the session closing: the close is
// finished, on whichever node, once the limiter answers.
func (m *Manager) Stop(ctx context.Context, account, id string) (Info, error) {
	if !m.enter() {
		return Info{}, ErrClosed
	}
	defer m.leave()
	return m.closeSession(ctx, account, id, ReasonStop, 0)
}

// StopWithReason closes a session as Stop does, recording reason (one of
// the Reason values other than ReasonNone) as what closed it: for a
// program that ends sessions for its own cause, such as package media when
// a client's peer is lost (ReasonMediaLost). It fails as Stop does, and
// with 400175 for ReasonNone.
func (m *Manager) StopWithReason(ctx context.Context, account, id string, reason Reason) (Info, error) {
	if reason == ReasonNone {
		return Info{}, sserrors.ErrInvalidParameter
	}
	if !m.enter() {
		return Info{}, ErrClosed
	}
	defer m.leave()
	return m.closeSession(ctx, account, id, reason, 0)
}

// closeSession moves a session to closing (conditionally on epoch when it is
// not zero), releases its slot and moves it to closed. Whoever wins the move
// to closing owns the rest, so the slot is released exactly once. With a
// SharedStore a release that fails leaves the session closing and returns
// the limiter's error: the store reports it again (TimeoutOrphaned) and the
// close is finished, on whichever node, once the limiter answers.
func (m *Manager) closeSession(ctx context.Context, account, id string, reason Reason, epoch uint64) (Info, error) {
	_, _, err := m.transition(ctx, account, id, Change{Event: fsm.EventClose, At: m.clock.Now(), Reason: reason, Epoch: epoch})
	if err != nil {
		return Info{}, err
	}
	ctx = uncancellable(ctx)
	if err := m.release(ctx, limits.Lease{Account: account, SessionID: id}); err != nil && m.unkept != nil {
		// A kept slot never expires: the session stays closing until its
		// slot is released, by the store's closing timer (see fire).
		return Info{}, err
	}
	rec, from, err := m.transition(ctx, account, id, Change{Event: fsm.EventClosed, At: m.clock.Now()})
	if closedElsewhere(from, err) {
		return rec.Info, nil
	}
	if err != nil {
		return Info{}, internal(err)
	}
	m.reportClosed(rec.Info)
	return rec.Info, nil
}

// closedElsewhere reports whether the last step of a close was refused
// because the session is closed already: with a SharedStore, a close cut
// by a backend failure may be finished by the store's timers (any node)
// while its closer still waits for an answer. The close is done, reported
// by whoever finished it.
func closedElsewhere(from fsm.State, err error) bool {
	return err != nil && from == fsm.Closed && errors.Is(err, fsm.StateError(fsm.Closed))
}

// reportClosed reports a session this Manager moved to closed (Hooks.OnClosed).
func (m *Manager) reportClosed(info Info) {
	if h := m.hooks.OnClosed; h != nil {
		h(info)
	}
}

// uncancellable returns ctx without its cancellation, for the work that
// must finish once a change is made (releasing a slot, counting minutes).
func uncancellable(ctx context.Context) context.Context {
	if ctx.Done() == nil {
		return ctx // never cancelled: spare the allocation
	}
	return context.WithoutCancel(ctx)
}

// transition asks the store for a change, retrying an unconditional one that
// lost a race.
func (m *Manager) transition(ctx context.Context, account, id string, ch Change) (Record, fsm.State, error) {
	for i := 0; ; i++ {
		rec, from, err := m.store.Transition(ctx, account, id, ch)
		if err == nil || ch.Epoch != 0 || !errors.Is(err, ErrConflict) {
			return rec, from, err
		}
		if i == maxConflictRetries {
			return rec, from, sserrors.ErrInternalServerError.WithCause(err)
		}
	}
}

// Stats is a snapshot of a Manager's counters. It is a plain value.
type Stats struct {
	// Subscribers is the number of live subscriptions.
	Subscribers int
	// DroppedEvents counts the events dropped, over all subscribers, because
	// a subscriber fell more than Config.SubscriberBuffer events behind.
	DroppedEvents uint64
}

// Stats returns the manager's counters.
func (m *Manager) Stats() Stats {
	return Stats{Subscribers: len(*m.subs.Load()), DroppedEvents: m.dropped.Load()}
}

// Close shuts the manager down, the server's shutdown path: it refuses new
// calls that change sessions (ErrClosed), waits for those in flight, stops
// the timers and the lease renewer, closes every session still open that
// the Store ranges over (with a SharedStore, those created through this
// node; subscribers see closing then closed, with ReasonShutdown), releases
// their slots, delivers every pending event to the subscribers and stops
// their goroutines, then returns. With a SharedStore a session whose
// release fails stays closing, finished by another node. It does not close
// the Limiter or the Store.
//
// Close is idempotent: every call waits for the same shutdown, and so does
// a Close after Leave (which then closes no session). When ctx ends first
// Close returns ctx.Err() and the shutdown goes on in the background. Get,
// List, Command and Touch keep answering afterwards (closed sessions answer
// 10005).
func (m *Manager) Close(ctx context.Context) error {
	return m.end(ctx, true)
}

// Leave takes this node out of a service whose sessions live in a
// SharedStore (a drain before a restart): like Close it refuses new calls
// that change sessions (ErrClosed), waits for those in flight, stops the
// timers and the lease renewer, delivers every pending event to the
// subscribers and stops their goroutines; unlike Close it changes no session
// and releases no slot. The sessions belong to the service: their slots are
// kept in the limiter, and the other nodes' Managers fire their timers and
// serve them. Before it returns, Leave tries once more to keep the slots
// whose Keep failed (nobody would retry it after this node); a slot whose
// lease was lost meanwhile closes its session (ReasonLeaseLost), as the
// renewer would have. It does not close the Limiter or the Store.
//
// Leave and Close share one shutdown: the first call decides whether the
// sessions are closed, and every later call of either waits for that
// shutdown. When ctx ends first Leave returns ctx.Err() and the shutdown
// goes on in the background. On a Store that is not shared (the
// MemoryStore), the sessions would be left open with nobody to close them or
// free their slots: use Close there.
func (m *Manager) Leave(ctx context.Context) error {
	return m.end(ctx, false)
}

func (m *Manager) end(ctx context.Context, closeSessions bool) error {
	m.closeOnce.Do(func() {
		m.callsMu.Lock()
		m.closing = true
		m.callsMu.Unlock()
		go m.shutdown(closeSessions)
	})
	select {
	case <-m.closed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Manager) shutdown(closeSessions bool) {
	defer close(m.closed)
	m.calls.Wait()
	close(m.stop)
	m.loops.Wait()
	ctx := context.Background()
	switch {
	case closeSessions:
		_ = m.store.Range(ctx, func(rec Record) bool {
			if rec.State.Open() {
				_, err := m.closeSession(ctx, rec.Account, rec.ID, ReasonShutdown, 0)
				m.background(BackgroundShutdownClose, err)
			}
			return true
		})
	case m.unkept != nil:
		// Leave: the renewer is gone, so the last chance to keep them.
		m.keepUnkept(ctx)
	}
	m.subMu.Lock()
	subs := *m.subs.Load()
	m.subs.Store(new([]*subscriber))
	m.subMu.Unlock()
	for _, s := range subs {
		s.finish()
	}
	m.subWG.Wait()
}

// enter admits a call that may change a session, unless Close has begun;
// a call admitted must leave.
func (m *Manager) enter() bool {
	m.callsMu.RLock()
	defer m.callsMu.RUnlock()
	if m.closing {
		return false
	}
	m.calls.Add(1)
	return true
}

func (m *Manager) leave() { m.calls.Done() }

// isClosing reports whether Close or Leave has begun.
func (m *Manager) isClosing() bool {
	m.callsMu.RLock()
	defer m.callsMu.RUnlock()
	return m.closing
}

// limit makes one limiter call, timed for Hooks.OnLimiter, and returns its
// error.
func (m *Manager) limit(op LimiterOp, call func() error) error {
	if m.hooks.OnLimiter == nil {
		return call()
	}
	t0 := time.Now()
	err := call()
	m.hooks.OnLimiter(op, time.Since(t0), err)
	return err
}

func (m *Manager) renew(ctx context.Context, lease limits.Lease) error {
	return m.limit(LimiterRenew, func() error {
		_, err := m.limiter.Renew(ctx, lease)
		return err
	})
}

// release frees a slot. A failure is reported (Hooks.OnLimiter) and
// returned; without a SharedStore the session is closed whatever the
// limiter says, and a lease that was not released expires.
func (m *Manager) release(ctx context.Context, lease limits.Lease) error {
	if m.unkept != nil {
		m.unkept.remove(lease.SessionID)
	}
	return m.limit(LimiterRelease, func() error { return m.limiter.Release(ctx, lease) })
}

// keep makes a recorded session's slot durable (with a SharedStore).
func (m *Manager) keep(ctx context.Context, lease limits.Lease) error {
	return m.limit(LimiterKeep, func() error { return m.limiter.Keep(ctx, lease) })
}

// background reports a failure of the manager's own goroutines to
// Hooks.OnBackgroundError, unless err is nil or the expected end of a race
// (see backgroundFailure).
func (m *Manager) background(op BackgroundOp, err error) {
	if h := m.hooks.OnBackgroundError; h != nil && backgroundFailure(err) {
		h(op, err)
	}
}

// backgroundFailure reports whether err, returned to a timer or to the
// lease renewer, is a failure rather than a race lost to another change (a
// conditional change's ErrConflict, the state's 10001–10005, or 10006 for a
// session forgotten meanwhile): those mean someone else already did, or
// undid, the work. A conflict that retries did not settle (500000) is a
// failure.
func backgroundFailure(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := sserrors.As(err); !ok {
		return !errors.Is(err, ErrConflict)
	}
	switch sserrors.CodeOf(err) {
	case sserrors.CodeSessionStateNew, sserrors.CodeSessionStateConnecting, sserrors.CodeSessionStateConnected,
		sserrors.CodeSessionStateClosing, sserrors.CodeSessionStateClosed, sserrors.CodeSessionNotFound:
		return false
	}
	return true
}

// detachedReleaseTimeout bounds a release that outlives its caller's
// context (see releaseAfterFailedCreate).
const detachedReleaseTimeout = 10 * time.Second

// releaseAfterFailedCreate gives back the slot of a session that could not
// be stored. While the caller's context is live the release is tried at
// once, so the slot is free when Create returns. When the context is
// already done (the store did not answer in time, so the backend is likely
// slow or down), or the release failed too (a failover cut both), it is
// retried in the background until the limiter answers, or the lease has
// expired by itself, or the Manager closes (Close waits for it): so a
// failover holds the slot of a failed Create no longer than the backend is
// away, and Create still returns by the caller's deadline.
func (m *Manager) releaseAfterFailedCreate(ctx context.Context, lease limits.Lease) {
	if ctx.Err() == nil && m.release(context.WithoutCancel(ctx), lease) == nil {
		return
	}
	m.releaseLater(ctx, lease)
}

// releaseLater releases lease in the background (see retryRelease); Close
// waits for it.
func (m *Manager) releaseLater(ctx context.Context, lease limits.Lease) {
	m.loops.Add(1)
	go func() {
		defer m.loops.Done()
		m.retryRelease(context.WithoutCancel(ctx), lease)
	}()
}

// releaseRetryEvery is how often retryRelease tries again.
const releaseRetryEvery = 250 * time.Millisecond

// retryRelease releases lease, trying again every releaseRetryEvery until
// it succeeds, the lease's own expiry (or detachedReleaseTimeout when it has
// none) has passed, or the Manager closes.
func (m *Manager) retryRelease(ctx context.Context, lease limits.Lease) {
	until := lease.Expires
	if until.IsZero() {
		until = time.Now().Add(detachedReleaseTimeout)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, detachedReleaseTimeout)
		err := m.release(rctx, lease)
		cancel()
		if err == nil || !time.Now().Before(until) {
			return
		}
		t := time.NewTimer(releaseRetryEvery)
		select {
		case <-m.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}
