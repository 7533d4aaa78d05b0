package session

import (
	"context"
	"errors"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// MemoryStoreConfig configures a MemoryStore; zero fields take the
// documented defaults.
type MemoryStoreConfig struct {
	// Shards is the number of independently locked parts the sessions are
	// spread over, rounded up to a power of two. The default is 64.
	Shards int
	// MachinePerSession runs every session's transitions through its own
	// fsm.Machine (a looplab/fsm machine per session) instead of the
	// default, fsm.Next: the transition table compiled from the same
	// lifecycle definition, applied as a compare-and-set under the shard's
	// lock, as a distributed store does. The answers are identical; the
	// default costs about 700 bytes less per session and well under half
	// the time per lifecycle, which is what keeps the Manager within 1.5×
	// of a bare looplab machine (see docs/performance.md).
	MachinePerSession bool
	// MaxClosedPerAccount bounds the closed sessions of one account kept
	// for their retention window: when an account's session closes past
	// it, its oldest closed session is forgotten at once (it answers 10006,
	// as after its retention window), so that an account creating and
	// stopping sessions without pause cannot grow the store without bound.
	// The default is DefaultMaxClosedPerAccount (1,000); negative means no
	// bound.
	MaxClosedPerAccount int
}

// DefaultMaxClosedPerAccount is MemoryStoreConfig.MaxClosedPerAccount when
// zero.
const DefaultMaxClosedPerAccount = 1000

// MemoryStore is the in-memory Store: sessions of one process, spread over
// shards (a map, an account index and a min-heap of deadlines each, under
// one mutex per shard), so that operations on different sessions rarely
// wait for each other. A session costs one small record and at most one
// heap entry, plus its fsm.Machine when MachinePerSession is set; it has no
// goroutine, timer or channel of its own. Deadlines are re-checked lazily:
// activity only moves a timestamp, and a deadline found early re-arms
// itself.
//
// A MemoryStore is safe for concurrent use by multiple goroutines.
type MemoryStore struct {
	shards   []memShard
	mask     uint64
	seed     maphash.Seed
	notify   func(Event)
	machines bool // one fsm.Machine per session
	// maxClosed is MemoryStoreConfig.MaxClosedPerAccount; math.MaxInt for no bound.
	maxClosed int

	// next is the earliest deadline (Unix ns) the timer loop will wake for;
	// math.MaxInt64 while Due is scanning, so that any deadline armed during
	// a scan wakes the loop again.
	next atomic.Int64
	wake chan struct{}
}

var _ Store = (*MemoryStore)(nil)

type memShard struct {
	mu       sync.Mutex
	sessions map[string]*memRecord   // by id (ids hashed to this shard)
	accounts map[string][]*memRecord // sessions not yet closed, by account (accounts hashed to this shard), in creation order
	closed   map[string]*closedList  // closed sessions kept, by account (accounts hashed to this shard), oldest first
	timers   timerHeap
	// top mirrors the earliest deadline in timers (math.MaxInt64 when
	// empty), so that Due passes over shards with nothing due without
	// taking their locks.
	top atomic.Int64
	_   [64]byte // keeps neighbouring shards' locks off one cache line
}

// setTop refreshes top after a change to timers. The shard's lock is held.
func (sh *memShard) setTop() {
	if len(sh.timers) == 0 {
		sh.top.Store(math.MaxInt64)
	} else {
		sh.top.Store(sh.timers[0].at)
	}
}

// memRecord is one session. Its fields are guarded by the mutex of the
// shard its id hashes to; times are Unix nanoseconds, 0 meaning unset.
type memRecord struct {
	timers                             // state: the machine's state, or the only record of it
	machine               *fsm.Machine // nil unless MachinePerSession
	id, account, avatarID string
	label                 string
	planName              string
	epoch                 uint64
	reason                uint8
	paid                  bool
	slot                  int32 // 1 + the index of the record's entry in its shard's timers; 0 when none

	// gone is set when the record is forgotten; older, newer link it in
	// its account's closedList, under the lock of the account's shard.
	gone         atomic.Bool
	older, newer *memRecord
}

// closedList is an account's closed sessions kept, oldest first, linked
// through their records.
type closedList struct {
	oldest, newest *memRecord
	n              int
}

func (l *closedList) push(r *memRecord) {
	r.older, r.newer = l.newest, nil
	if l.newest != nil {
		l.newest.newer = r
	} else {
		l.oldest = r
	}
	l.newest = r
	l.n++
}

// remove unlinks r, which must be in l.
func (l *closedList) remove(r *memRecord) {
	if r.older != nil {
		r.older.newer = r.newer
	} else {
		l.oldest = r.newer
	}
	if r.newer != nil {
		r.newer.older = r.older
	} else {
		l.newest = r.older
	}
	r.older, r.newer = nil, nil
	l.n--
}

// contains reports whether r is linked in l.
func (l *closedList) contains(r *memRecord) bool {
	return r.older != nil || r.newer != nil || l.oldest == r
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(cfg MemoryStoreConfig) *MemoryStore {
	n := cfg.Shards
	if n <= 0 {
		n = 64
	}
	n = 1 << bits.Len(uint(n-1))
	maxClosed := cfg.MaxClosedPerAccount
	switch {
	case maxClosed == 0:
		maxClosed = DefaultMaxClosedPerAccount
	case maxClosed < 0:
		maxClosed = math.MaxInt // listed for ListClosed, never pushed out
	}
	s := &MemoryStore{
		maxClosed: maxClosed,
		shards:    make([]memShard, n),
		mask:      uint64(n - 1),
		seed:      maphash.MakeSeed(),
		wake:      make(chan struct{}, 1),
		machines:  cfg.MachinePerSession,
	}
	for i := range s.shards {
		s.shards[i].sessions = make(map[string]*memRecord)
		s.shards[i].accounts = make(map[string][]*memRecord)
		s.shards[i].closed = make(map[string]*closedList)
		s.shards[i].top.Store(math.MaxInt64)
	}
	s.next.Store(math.MaxInt64)
	return s
}

func (s *MemoryStore) shard(key string) *memShard {
	return &s.shards[maphash.String(s.seed, key)&s.mask]
}

// Watch implements Store.
func (s *MemoryStore) Watch(fn func(Event)) error {
	if s.notify != nil {
		return errors.New("session: MemoryStore already serves a Manager")
	}
	s.notify = fn
	return nil
}

func (s *MemoryStore) emit(r *memRecord, from, to fsm.State, at int64) {
	if s.notify != nil {
		s.notify(Event{SessionID: r.id, Account: r.account, From: from, To: to, Epoch: r.epoch, At: fromNanos(at), Reason: Reason(r.reason)})
	}
}

func (r *memRecord) record() Record {
	return Record{
		Info: Info{
			ID:                 r.id,
			Account:            r.account,
			AvatarID:           r.avatarID,
			State:              r.state,
			Epoch:              r.epoch,
			Paid:               r.paid,
			CreatedAt:          fromNanos(r.created),
			StartedAt:          fromNanos(r.started),
			ClosedAt:           fromNanos(r.closed),
			LastActivity:       fromNanos(r.activity),
			IdleTimeout:        time.Duration(r.idle),
			DisableIdleTimeout: r.disableIdle,
			DurationLimit:      time.Duration(r.durationLimit),
			Reason:             Reason(r.reason),
			Label:              r.label,
			PlanName:           r.planName,
		},
		JoinTimeout: time.Duration(r.join),
		Retention:   time.Duration(r.retention),
	}
}

// fire applies ev, through the session's machine when it has one. The
// shard's lock is held.
func (r *memRecord) fire(ev fsm.Event) (from, to fsm.State, err error) {
	if r.machine == nil {
		to, err = fsm.Next(r.state, ev)
		if err != nil {
			return r.state, r.state, err
		}
		from, r.state = r.state, to
		return from, to, nil
	}
	// ctx was checked by the caller; the change is instantaneous.
	from, to, err = r.machine.Fire(context.Background(), ev)
	r.state = r.machine.State()
	return from, to, err
}

func (r *memRecord) deadline() (int64, Timeout) { return r.timers.next() }

// lookup returns the record of (account, id) in sh, whose lock is held.
func (sh *memShard) lookup(account, id string) *memRecord {
	r := sh.sessions[id]
	if r == nil || r.account != account {
		return nil
	}
	return r
}

// Insert implements Store.
func (s *MemoryStore) Insert(ctx context.Context, rec Record) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	if rec.ID == "" || rec.State != fsm.New || rec.Epoch != 1 || rec.Reason < 0 || rec.Reason > math.MaxUint8 {
		return Record{}, errors.New("session: MemoryStore.Insert: not a new record")
	}
	r := &memRecord{
		timers: timers{
			state:         fsm.New,
			created:       nanos(rec.CreatedAt),
			idle:          int64(rec.IdleTimeout),
			durationLimit: int64(rec.DurationLimit),
			join:          int64(rec.JoinTimeout),
			retention:     int64(rec.Retention),
			disableIdle:   rec.DisableIdleTimeout,
		},
		id:       rec.ID,
		account:  rec.Account,
		avatarID: rec.AvatarID,
		label:    rec.Label,
		planName: rec.PlanName,
		epoch:    1,
		paid:     rec.Paid,
	}
	if s.machines {
		r.machine = fsm.NewMachine(fsm.New)
	}
	// Into the account index first: the record is listed before anyone can
	// reach it by id, so its removal on closed always finds it.
	as := s.shard(r.account)
	as.mu.Lock()
	as.accounts[r.account] = append(as.accounts[r.account], r)
	as.mu.Unlock()

	sh := s.shard(r.id)
	sh.mu.Lock()
	if _, taken := sh.sessions[r.id]; taken {
		sh.mu.Unlock()
		s.unlist(r)
		return Record{}, ErrExists
	}
	sh.sessions[r.id] = r
	s.arm(sh, r)
	out := r.record()
	s.emit(r, fsm.Unknown, fsm.New, r.created)
	sh.mu.Unlock()
	return out, nil
}

// unlist removes r from its account's index.
func (s *MemoryStore) unlist(r *memRecord) {
	as := s.shard(r.account)
	as.mu.Lock()
	list := as.accounts[r.account]
	if i := slices.Index(list, r); i >= 0 {
		list = slices.Delete(list, i, i+1)
		if len(list) == 0 {
			delete(as.accounts, r.account)
		} else {
			as.accounts[r.account] = list
		}
	}
	as.mu.Unlock()
}

// Get implements Store.
func (s *MemoryStore) Get(ctx context.Context, account, id string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	sh := s.shard(id)
	sh.mu.Lock()
	r := sh.lookup(account, id)
	if r == nil {
		sh.mu.Unlock()
		return Record{}, sserrors.ErrSessionNotFound
	}
	rec := r.record()
	sh.mu.Unlock()
	return rec, nil
}

// List implements Store.
func (s *MemoryStore) List(ctx context.Context, account string) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	as := s.shard(account)
	as.mu.Lock()
	listed := slices.Clone(as.accounts[account])
	as.mu.Unlock()
	out := make([]Record, 0, len(listed))
	for _, r := range listed {
		sh := s.shard(r.id)
		sh.mu.Lock()
		rec := r.record()
		sh.mu.Unlock()
		if rec.State.Open() {
			out = append(out, rec)
		}
	}
	// The index is in creation order; sorting by time only matters for
	// clocks that went back, and keeps that order among equal times.
	slices.SortStableFunc(out, func(a, b Record) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Transition implements Store. The event is applied under the shard's lock
// (by fsm.Next, or the session's fsm.Machine when MachinePerSession is set),
// so MemoryStore never returns ErrConflict for an unconditional change.
func (s *MemoryStore) Transition(ctx context.Context, account, id string, ch Change) (Record, fsm.State, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, fsm.Unknown, err
	}
	sh := s.shard(id)
	sh.mu.Lock()
	r := sh.lookup(account, id)
	if r == nil {
		sh.mu.Unlock()
		return Record{}, fsm.Unknown, sserrors.ErrSessionNotFound
	}
	if ch.Epoch != 0 && ch.Epoch != r.epoch {
		rec := r.record()
		sh.mu.Unlock()
		return rec, rec.State, ErrConflict
	}
	from, to, err := r.fire(ch.Event)
	if err != nil {
		rec := r.record()
		sh.mu.Unlock()
		return rec, from, err
	}
	r.epoch++
	at := nanos(ch.At)
	switch to {
	case fsm.Connecting:
		r.started = at
	case fsm.Connected:
		r.activity = at
	case fsm.Closing:
		r.reason = uint8(ch.Reason)
	case fsm.Closed:
		r.closed = at
	}
	s.arm(sh, r)
	rec := r.record()
	s.emit(r, from, to, at)
	sh.mu.Unlock()
	if to == fsm.Closed {
		s.unlist(r)
		if old := s.keepClosed(r); old != nil {
			s.forget(old, at)
		}
	}
	return rec, from, nil
}

// keepClosed lists the closed record r among its account's kept ones and,
// past MaxClosedPerAccount, returns the oldest, unlisted, for the caller
// to forget.
func (s *MemoryStore) keepClosed(r *memRecord) *memRecord {
	as := s.shard(r.account)
	as.mu.Lock()
	defer as.mu.Unlock()
	if r.gone.Load() { // forgotten already (a retention shorter than this call)
		return nil
	}
	l := as.closed[r.account]
	if l == nil {
		l = &closedList{}
		as.closed[r.account] = l
	}
	l.push(r)
	if l.n <= s.maxClosed {
		return nil
	}
	old := l.oldest
	l.remove(old)
	return old
}

// unlistClosed removes the forgotten record r from its account's kept
// closed ones, if it is there.
func (s *MemoryStore) unlistClosed(r *memRecord) {
	as := s.shard(r.account)
	as.mu.Lock()
	defer as.mu.Unlock()
	l := as.closed[r.account]
	if l == nil || !l.contains(r) {
		return
	}
	l.remove(r)
	if l.n == 0 {
		delete(as.closed, r.account)
	}
}

// forget drops the closed record r, pushed out of its account's kept ones,
// as its retention timer would: it answers 10006 from now on, and the
// watcher receives closed → unknown.
func (s *MemoryStore) forget(r *memRecord, at int64) {
	sh := s.shard(r.id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.sessions[r.id] != r || r.state != fsm.Closed {
		return
	}
	r.gone.Store(true)
	delete(sh.sessions, r.id)
	if r.slot != 0 {
		sh.timers.remove(r)
		sh.setTop()
	}
	r.epoch++
	s.emit(r, fsm.Closed, fsm.Unknown, at)
}

// Touch implements Store.
func (s *MemoryStore) Touch(ctx context.Context, account, id string, at time.Time) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	sh := s.shard(id)
	sh.mu.Lock()
	r := sh.lookup(account, id)
	if r == nil {
		sh.mu.Unlock()
		return Record{}, sserrors.ErrSessionNotFound
	}
	if n := nanos(at); r.state == fsm.Connected && n > r.activity {
		r.activity = n // the idle entry in the heap finds out when it fires
	}
	rec := r.record()
	sh.mu.Unlock()
	return rec, nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(ctx context.Context, account, id string, epoch uint64, at time.Time) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	sh := s.shard(id)
	sh.mu.Lock()
	r := sh.lookup(account, id)
	if r == nil {
		sh.mu.Unlock()
		return Record{}, sserrors.ErrSessionNotFound
	}
	rec := r.record()
	if st := r.state; st != fsm.Closed {
		sh.mu.Unlock()
		return rec, fsm.StateError(st)
	}
	if epoch != r.epoch {
		sh.mu.Unlock()
		return rec, ErrConflict
	}
	r.gone.Store(true)
	delete(sh.sessions, id)
	if r.slot != 0 {
		sh.timers.remove(r)
		sh.setTop()
	}
	r.epoch++
	s.emit(r, fsm.Closed, fsm.Unknown, nanos(at))
	sh.mu.Unlock()
	s.unlistClosed(r)
	return rec, nil
}

// Range implements Store.
func (s *MemoryStore) Range(ctx context.Context, fn func(Record) bool) error {
	var batch []Record
	for i := range s.shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		sh := &s.shards[i]
		batch = batch[:0]
		sh.mu.Lock()
		for _, r := range sh.sessions {
			if r.state != fsm.Closed {
				batch = append(batch, r.record())
			}
		}
		sh.mu.Unlock()
		for _, rec := range batch {
			if !fn(rec) {
				return nil
			}
		}
	}
	return nil
}

// arm makes sure r's next deadline has a heap entry at or before it. The
// shard's lock is held.
func (s *MemoryStore) arm(sh *memShard, r *memRecord) {
	d, kind := r.deadline()
	if kind == TimeoutNone || (r.slot != 0 && sh.timers[r.slot-1].at <= d) {
		return // an earlier entry re-checks when it fires
	}
	sh.timers.set(r, d) // the record's one entry, moved earlier or added
	if sh.timers[0].at == d {
		sh.top.Store(d)
	}
	for {
		cur := s.next.Load()
		if d >= cur {
			return
		}
		if s.next.CompareAndSwap(cur, d) {
			select {
			case s.wake <- struct{}{}:
			default:
			}
			return
		}
	}
}

// Due implements Store.
func (s *MemoryStore) Due(ctx context.Context, now time.Time, buf []Due) ([]Due, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return buf[:0], time.Time{}, err
	}
	limit := cap(buf)
	if limit == 0 {
		limit = math.MaxInt
	}
	due := buf[:0]
	n := nanos(now)
	next := int64(math.MaxInt64)
	full := false
	s.next.Store(math.MaxInt64)
	for i := range s.shards {
		sh := &s.shards[i]
		if top := sh.top.Load(); top > n {
			// Nothing due here. A deadline armed after this load lowers
			// s.next (stored as MaxInt64 above) and wakes the loop.
			next = min(next, top)
			continue
		}
		sh.mu.Lock()
		for len(sh.timers) > 0 && sh.timers[0].at <= n {
			if len(due) == limit {
				full = true
				break
			}
			r := sh.timers[0].rec
			sh.timers.remove(r)
			d, kind := r.deadline()
			switch {
			case kind == TimeoutNone:
			case d > n:
				s.arm(sh, r) // activity moved the deadline: re-arm, fire later
			default:
				due = append(due, Due{Record: r.record(), Timeout: kind, At: fromNanos(d)})
			}
		}
		sh.setTop()
		next = min(next, sh.top.Load())
		sh.mu.Unlock()
		if full {
			break
		}
	}
	if full {
		return due, now, nil
	}
	for {
		cur := s.next.Load()
		if next >= cur || s.next.CompareAndSwap(cur, next) {
			break
		}
	}
	if next == math.MaxInt64 {
		return due, time.Time{}, nil
	}
	return due, fromNanos(next), nil
}

// Wake implements Store.
func (s *MemoryStore) Wake() <-chan struct{} { return s.wake }

// timerEntry is a session's deadline in its shard's heap. A record has at
// most one entry, whose index it keeps (memRecord.slot), so that a deadline
// moved earlier updates the entry in place and a forgotten session takes its
// entry with it: the heap never holds more entries than sessions, nor keeps
// a forgotten record alive.
type timerEntry struct {
	at  int64
	rec *memRecord
}

// timerHeap is a binary min-heap of deadlines, indexed by the records'
// slots. The shard's lock guards it.
type timerHeap []timerEntry

// set gives r's entry the deadline at, adding the entry when r has none.
func (h *timerHeap) set(r *memRecord, at int64) {
	if r.slot == 0 {
		*h = append(*h, timerEntry{at: at, rec: r})
		r.slot = int32(len(*h))
		h.up(len(*h) - 1)
		return
	}
	i := int(r.slot - 1)
	old := (*h)[i].at
	(*h)[i].at = at
	if at < old {
		h.up(i)
	} else {
		h.down(i)
	}
}

// remove drops r's entry, which must exist.
func (h *timerHeap) remove(r *memRecord) {
	a := *h
	i, last := int(r.slot-1), len(a)-1
	r.slot = 0
	if i != last {
		a[i] = a[last]
		a[i].rec.slot = int32(i + 1)
	}
	a[last] = timerEntry{}
	*h = a[:last]
	if i != last {
		h.down(i)
		h.up(i)
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].rec.slot = int32(i + 1)
	h[j].rec.slot = int32(j + 1)
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].at <= h[i].at {
			return
		}
		h.swap(p, i)
		i = p
	}
}

func (h timerHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].at < h[l].at {
			m = r
		}
		if h[i].at <= h[m].at {
			return
		}
		h.swap(i, m)
		i = m
	}
}
