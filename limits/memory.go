package limits

import (
	"context"
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
)

// Defaults of MemoryConfig.
const (
	// DefaultLeaseTTL is the lease lifetime of a Memory limiter when
	// MemoryConfig.LeaseTTL is zero.
	DefaultLeaseTTL = time.Minute
	// DefaultSweepInterval is how often a Memory limiter sweeps expired
	// leases and idle accounts when MemoryConfig.SweepInterval is zero.
	DefaultSweepInterval = time.Minute
)

// MemoryConfig configures a Memory limiter. The zero value is a usable
// configuration: unlimited capacity, one-minute leases, the system clock and
// a sweep every minute.
type MemoryConfig struct {
	// Capacity is the number of sessions the whole service may hold at once
	// (10014 beyond it). The default value, 0, means unlimited; a negative
	// value is treated as 0.
	Capacity int
	// LeaseTTL is how long a lease lives unless renewed. The default value
	// is DefaultLeaseTTL (one minute); a negative value is treated as 0.
	LeaseTTL time.Duration
	// Now is the clock. Tests inject a fake clock here instead of
	// sleeping. The default value is time.Now.
	Now func() time.Time
	// SweepInterval is how often a background goroutine reclaims expired
	// leases and forgets idle accounts (no slot held and no trial minutes
	// counted this month). The default value is DefaultSweepInterval; a
	// negative value starts no goroutine (call Sweep yourself).
	SweepInterval time.Duration
}

// Memory is the in-memory Limiter, the embedded default for a single node.
//
// It is safe for concurrent use by multiple goroutines. Accounts live in a
// fixed number of shards, each with its own mutex, so that acquires on
// different accounts rarely contend; under a capacity, the service-wide count
// of slots is one counter under its own mutex, taken briefly after the
// shard's, so the capacity is exact. Without a capacity, each shard counts
// its own slots. No goroutine or timer is
// started per lease: expired leases are reclaimed on the paths that need
// their slot (an account at its concurrency limit, a service at its
// capacity, a Started, Renew, Release or new Acquire of that session) and by
// the sweeper.
//
// Release never fails and ignores its context, so a slot is always freed
// even during a shutdown with a cancelled context.
type Memory struct {
	capacity int64
	ttl      int64 // nanoseconds
	now      func() time.Time
	seed     maphash.Seed
	shards   [memoryShards]shard

	// inUse counts the slots held service-wide, expired or not, under a
	// capacity. It is taken under inUseMu, after a shard's lock if any.
	inUseMu sync.Mutex
	inUse   int64

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// memoryShards is a power of two, large enough that two goroutines on
// different accounts rarely meet on one lock, small enough that a capacity
// refusal can visit every shard to reclaim expired leases.
const memoryShards = 64

type shard struct {
	mu       sync.Mutex
	accounts map[string]*account
	// minExpires is a lower bound of the expiries of the shard's slots
	// (math.MaxInt64 when it holds none), so that a reclaim skips shards
	// where nothing can have expired.
	minExpires int64
	// peak is the largest len(accounts) since the map was last rebuilt; the
	// sweeper rebuilds a map that shrank well below it, because Go maps do
	// not give memory back.
	peak int
	// held counts the shard's slots, expired or not, when the limiter has
	// no capacity (Memory.inUse counts them otherwise). Guarded by mu.
	held int64
}

// account is one account's slots and trial minutes. Guarded by its shard's
// mutex.
type account struct {
	slots slotSet
	// monthStart and monthEnd bound the calendar month (UTC) that used
	// counts, in Unix nanoseconds.
	monthStart, monthEnd int64
	// used is the trial time counted this month by sessions already
	// released or expired, in nanoseconds.
	used int64
}

// slotEntry is one held slot, identified by its session id.
type slotEntry struct {
	id      string
	expires int64 // Unix nanoseconds; kept (never) once Keep made it durable
	started int64 // Unix nanoseconds; meaningful when isStarted
	// isStarted marks a session whose minutes are being counted.
	isStarted bool
	// trial marks a slot acquired under a trial plan: only those count
	// minutes.
	trial bool
}

// slotSet holds an account's slots: a slice searched linearly while small
// (most accounts hold a handful), with an index by session id once it grows.
type slotSet struct {
	list  []slotEntry
	index map[string]int32
}

const slotIndexThreshold = 16

func (s *slotSet) find(id string) int {
	if s.index != nil {
		if i, ok := s.index[id]; ok {
			return int(i)
		}
		return -1
	}
	for i := range s.list {
		if s.list[i].id == id {
			return i
		}
	}
	return -1
}

func (s *slotSet) add(e slotEntry) {
	s.list = append(s.list, e)
	switch {
	case s.index != nil:
		s.index[e.id] = int32(len(s.list) - 1)
	case len(s.list) > slotIndexThreshold:
		s.index = make(map[string]int32, 2*len(s.list))
		for i := range s.list {
			s.index[s.list[i].id] = int32(i)
		}
	}
}

// remove deletes the entry at i by moving the last one into its place.
func (s *slotSet) remove(i int) {
	last := len(s.list) - 1
	if s.index != nil {
		delete(s.index, s.list[i].id)
		if i != last {
			s.index[s.list[last].id] = int32(i)
		}
	}
	s.list[i] = s.list[last]
	s.list[last] = slotEntry{} // drop the id string for the GC
	s.list = s.list[:last]
	if s.index != nil && len(s.list) <= slotIndexThreshold/2 {
		s.index = nil
	}
}

// NewMemory returns an in-memory limiter configured by cfg, and starts its
// sweeper unless cfg.SweepInterval is negative. Call Close to stop it.
func NewMemory(cfg MemoryConfig) *Memory {
	m := &Memory{
		capacity: int64(max(cfg.Capacity, 0)),
		ttl:      int64(cfg.LeaseTTL),
		now:      cfg.Now,
		seed:     maphash.MakeSeed(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if cfg.LeaseTTL == 0 {
		m.ttl = int64(DefaultLeaseTTL)
	}
	m.ttl = max(m.ttl, 0)
	if m.now == nil {
		m.now = time.Now
	}
	for i := range m.shards {
		m.shards[i].accounts = make(map[string]*account)
		m.shards[i].minExpires = math.MaxInt64
	}
	every := cfg.SweepInterval
	if every == 0 {
		every = DefaultSweepInterval
	}
	if every < 0 {
		close(m.done)
		return m
	}
	go m.sweepLoop(every)
	return m
}

var _ Limiter = (*Memory)(nil)

// Errors for requests that cannot be honoured whatever the state: the
// catalog's 400175 Invalid parameter, and nothing changes.
var (
	errNoAccount = sserrors.ErrInvalidParameter.WithCause(errors.New("limits: request without an account"))
	errNoSession = sserrors.ErrInvalidParameter.WithCause(errors.New("limits: request without a session id"))
)

// nowNano reads the limiter's clock in Unix nanoseconds.
func (m *Memory) nowNano() int64 { return m.now().UnixNano() }

func (m *Memory) shardOf(account string) *shard {
	return &m.shards[maphash.String(m.seed, account)&(memoryShards-1)]
}

// kept is the expiry of a kept slot (see Keep): never.
const kept = math.MaxInt64

func (m *Memory) lease(account, id string, expires int64) Lease {
	if expires == kept {
		return Lease{Account: account, SessionID: id}
	}
	return Lease{Account: account, SessionID: id, Expires: time.Unix(0, expires).UTC()}
}

// Acquire grants req a slot or says which limit refused, checking the trial
// quota, then the plan's concurrency, then the service's capacity (see the
// package documentation). A session id that already holds a live slot in
// req.Account gets that slot back, renewed, without any check and without a
// second slot. An empty Account or SessionID is refused with the catalog's
// 400175 (Invalid parameter) error and changes nothing; a done ctx returns
// ctx.Err() and takes nothing.
func (m *Memory) Acquire(ctx context.Context, req Request) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	switch {
	case req.Account == "":
		return Decision{}, errNoAccount
	case req.SessionID == "":
		return Decision{}, errNoSession
	}
	s := m.shardOf(req.Account)
	for attempt := 0; ; attempt++ {
		now := m.nowNano()
		d, full := m.tryAcquire(s, req, now)
		if !full {
			return d, nil
		}
		// The service is at capacity. Leases that expired without a
		// release still count there; reclaim them first so that expiry is
		// exact, then try once more.
		if attempt > 0 || m.reclaim(now) == 0 {
			return Decision{Refused: SessionFull}, nil
		}
	}
}

// tryAcquire runs the checks under the account's shard lock. full reports
// a capacity refusal that reclaiming expired leases might turn around.
func (m *Memory) tryAcquire(s *shard, req Request, now int64) (d Decision, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[req.Account]
	if a != nil {
		if i := a.slots.find(req.SessionID); i >= 0 {
			e := &a.slots.list[i]
			if now < e.expires {
				if e.expires != kept {
					e.expires = now + m.ttl
				}
				return Decision{Lease: m.lease(req.Account, req.SessionID, e.expires)}, false
			}
			m.drop(s, a, i, now)
		}
	}
	plan := &req.Plan
	if plan.Trial && !a.quotaLeft(plan.MonthlyMinutes, now) {
		return Decision{Refused: TrialQuota}, false
	}
	if a.held() >= plan.MaxConcurrent {
		if a == nil || m.purge(s, a, now) == 0 || a.held() >= plan.MaxConcurrent {
			return Decision{Refused: Concurrency}, false
		}
	}
	// At capacity, this account's own expired leases are the cheapest to
	// reclaim: they are under the lock already held.
	if !m.reserve(s) && (a == nil || m.purge(s, a, now) == 0 || !m.reserve(s)) {
		return Decision{Refused: SessionFull}, true
	}
	if a == nil {
		a = new(account)
		s.accounts[req.Account] = a
		s.peak = max(s.peak, len(s.accounts))
	}
	expires := now + m.ttl
	a.slots.add(slotEntry{id: req.SessionID, expires: expires, trial: plan.Trial})
	s.minExpires = min(s.minExpires, expires)
	return Decision{Lease: m.lease(req.Account, req.SessionID, expires)}, false
}

// reserve takes one unit of capacity, never going above it, for a slot of
// shard s, whose lock is held.
func (m *Memory) reserve(s *shard) bool {
	if m.capacity == 0 {
		s.held++
		return true
	}
	m.inUseMu.Lock()
	defer m.inUseMu.Unlock()
	if m.inUse >= m.capacity {
		return false
	}
	m.inUse++
	return true
}

// held is the number of slots a holds, expired or not; 0 for nil.
func (a *account) held() int {
	if a == nil {
		return 0
	}
	return len(a.slots.list)
}

// maxQuotaMinutes keeps MonthlyMinutes*time.Minute inside an int64.
const maxQuotaMinutes = math.MaxInt64 / int64(time.Minute)

// quotaLeft reports whether a (nil: an account with no history) has used
// less than minutes of trial time this month, counting running sessions up
// to now (or to their expiry, if earlier).
func (a *account) quotaLeft(minutes int, now int64) bool {
	if minutes <= 0 {
		return false
	}
	if a == nil || int64(minutes) >= maxQuotaMinutes {
		return true
	}
	a.roll(now)
	used := a.used
	for i := range a.slots.list {
		used += a.counted(&a.slots.list[i], now)
	}
	return used < int64(minutes)*int64(time.Minute)
}

// roll moves a to the calendar month (UTC) of now, forgetting the minutes
// of an earlier month.
func (a *account) roll(now int64) {
	if now < a.monthEnd && a.monthEnd != 0 {
		return
	}
	t := time.Unix(0, now).UTC()
	y, mo, _ := t.Date()
	a.monthStart = time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	a.monthEnd = time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	a.used = 0
}

// counted is the trial time e counts in a's current month up to now: from
// its start (or the month's start, if later) to now (or its expiry, if
// earlier).
func (a *account) counted(e *slotEntry, now int64) int64 {
	if !e.trial || !e.isStarted {
		return 0
	}
	from := max(e.started, a.monthStart)
	to := min(now, e.expires)
	if to <= from {
		return 0
	}
	return to - from
}

// drop removes a's slot i at now, adds its trial time to the month and
// frees its unit of capacity. now is read only for a started trial slot. a
// is an account of shard s, whose lock is held.
func (m *Memory) drop(s *shard, a *account, i int, now int64) {
	if e := &a.slots.list[i]; e.trial && e.isStarted {
		a.roll(now)
		a.used += a.counted(e, now)
	}
	a.slots.remove(i)
	if m.capacity == 0 {
		s.held--
	} else {
		m.inUseMu.Lock()
		m.inUse--
		m.inUseMu.Unlock()
	}
}

// purge drops a's expired slots and returns how many it dropped. a is an
// account of shard s, whose lock is held.
func (m *Memory) purge(s *shard, a *account, now int64) int {
	n := 0
	for i := len(a.slots.list) - 1; i >= 0; i-- {
		if a.slots.list[i].expires <= now {
			m.drop(s, a, i, now)
			n++
		}
	}
	return n
}

// reclaim drops the expired slots of every shard that may hold one and
// returns how many it dropped. It takes one shard lock at a time.
func (m *Memory) reclaim(now int64) int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		if s.minExpires <= now {
			n += m.purgeShard(s, now, false)
		}
		s.mu.Unlock()
	}
	return n
}

// purgeShard drops the expired slots of every account of s, recomputes
// s.minExpires and, when forget is set, deletes idle accounts. The caller
// holds s.mu.
func (m *Memory) purgeShard(s *shard, now int64, forget bool) int {
	n := 0
	low := int64(math.MaxInt64)
	for name, a := range s.accounts {
		n += m.purge(s, a, now)
		for i := range a.slots.list {
			low = min(low, a.slots.list[i].expires)
		}
		if forget && len(a.slots.list) == 0 {
			if a.used != 0 {
				a.roll(now)
			}
			if a.used == 0 {
				delete(s.accounts, name)
			}
		}
	}
	s.minExpires = low
	return n
}

// Started starts counting lease's session against its account's trial
// minutes (sessions acquired under a paid plan count nothing). Calling it
// again for the same session does nothing. It returns ErrLeaseExpired
// (wrapped) when the lease holds no slot, or ctx.Err() for a done ctx.
func (m *Memory) Started(ctx context.Context, lease Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := m.shardOf(lease.Account)
	now := m.nowNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, i := m.live(s, lease, now)
	if i < 0 {
		return ErrLeaseExpired
	}
	if e := &a.slots.list[i]; !e.isStarted {
		e.isStarted, e.started = true, now
	}
	return nil
}

// Renew extends lease to LeaseTTL from now and returns it with its new
// expiry (a kept lease stays kept, with a zero Expires). It returns ErrLeaseExpired when the lease has expired
// or was released (the slot is then free), or ctx.Err() for a done ctx.
func (m *Memory) Renew(ctx context.Context, lease Lease) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	s := m.shardOf(lease.Account)
	now := m.nowNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, i := m.live(s, lease, now)
	if i < 0 {
		return Lease{}, ErrLeaseExpired
	}
	e := &a.slots.list[i]
	if e.expires != kept {
		e.expires = now + m.ttl
	}
	return m.lease(lease.Account, lease.SessionID, e.expires), nil
}

// Keep makes lease's slot durable: it never expires and is freed only by
// Release. Keeping it again does nothing. It returns ErrLeaseExpired when
// the lease has expired or was released, or ctx.Err() for a done ctx.
func (m *Memory) Keep(ctx context.Context, lease Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := m.shardOf(lease.Account)
	now := m.nowNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, i := m.live(s, lease, now)
	if i < 0 {
		return ErrLeaseExpired
	}
	a.slots.list[i].expires = kept
	return nil
}

// live finds lease's slot if it has not expired; an expired one is dropped.
// The caller holds s.mu.
func (m *Memory) live(s *shard, lease Lease, now int64) (*account, int) {
	a := s.accounts[lease.Account]
	if a == nil {
		return nil, -1
	}
	i := a.slots.find(lease.SessionID)
	if i >= 0 && a.slots.list[i].expires <= now {
		m.drop(s, a, i, now)
		i = -1
	}
	return a, i
}

// Release frees lease's slot and adds the session's trial time to its
// account's month (up to the lease's expiry if it had expired). Releasing
// twice, an expired lease or a zero Lease does nothing. It never fails and
// ignores ctx: an in-memory release cannot block.
func (m *Memory) Release(_ context.Context, lease Lease) error {
	s := m.shardOf(lease.Account)
	s.mu.Lock()
	if a := s.accounts[lease.Account]; a != nil {
		if i := a.slots.find(lease.SessionID); i >= 0 {
			// Only a session whose minutes are counted needs the clock
			// (a system clock read is a sizeable share of a release).
			var now int64
			if e := &a.slots.list[i]; e.trial && e.isStarted {
				now = m.nowNano()
			}
			m.drop(s, a, i, now)
		}
	}
	s.mu.Unlock()
	return nil
}

// InUse returns the number of slots the service holds, including leases
// that have expired but are not yet reclaimed. Without a capacity it sums
// the shards' counts one after the other, so that while slots are taken and
// freed it may miss a change made during the sum.
func (m *Memory) InUse() int {
	if m.capacity != 0 {
		m.inUseMu.Lock()
		defer m.inUseMu.Unlock()
		return int(m.inUse)
	}
	var n int64
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += s.held
		s.mu.Unlock()
	}
	return int(n)
}

// Accounts returns the number of accounts the limiter remembers: those
// holding a slot, those with trial minutes counted this month, and idle
// ones not yet swept.
func (m *Memory) Accounts() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.accounts)
		s.mu.Unlock()
	}
	return n
}

// Sweep reclaims every expired lease and forgets idle accounts (no slot
// held and no trial minutes counted in the current month). The sweeper
// goroutine calls it every SweepInterval; tests and callers that disabled
// the sweeper may call it directly. It takes one shard lock at a time.
func (m *Memory) Sweep() {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		m.purgeShard(s, m.nowNano(), true)
		// Go maps keep their memory after deletes: rebuild one that
		// shrank to a quarter of its peak so that memory follows load.
		if s.peak >= rebuildPeak && len(s.accounts) < s.peak/4 {
			fresh := make(map[string]*account, len(s.accounts))
			for k, v := range s.accounts {
				fresh[k] = v
			}
			s.accounts = fresh
			s.peak = len(fresh)
		}
		s.mu.Unlock()
	}
}

// rebuildPeak is the smallest peak map size for which Sweep rebuilds a
// shard's map that shrank to a quarter of it.
const rebuildPeak = 256

func (m *Memory) sweepLoop(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Sweep()
		}
	}
}

// Close stops the sweeper and waits for it to return. The limiter keeps
// answering after Close (expired leases are still reclaimed when their
// slot is needed), but idle accounts are no longer swept. Closing twice is
// harmless; Close always returns nil.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() { close(m.stop) })
	<-m.done
	return nil
}
