package session

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// Subscribe registers fn to receive every Event of every session (see
// Event), and returns a function that cancels the subscription.
//
// Delivery: fn is called on a goroutine of the subscription's own (one per
// subscriber, never one per event), one Event at a time, each session's
// events in the order of its transitions. A transition never waits for a
// subscriber: it appends the Event to the subscriber's queue and goes on.
//
// Falling behind: the queue holds up to Config.SubscriberBuffer events
// (65,536 by default). When a subscriber is that far behind, each new Event
// drops the oldest undelivered one; Stats().DroppedEvents counts them. A
// subscriber that must never miss a state can re-read the session with Get.
//
// cancel stops the subscription: undelivered events are discarded, no call
// of fn starts after the one in progress (if any) returns, and the
// goroutine exits. cancel is idempotent, does not wait, and may be called
// from fn. Close delivers every pending event, then ends every
// subscription. Subscribe after Close has begun returns a cancel that does
// nothing, and fn is never called. fn must not panic.
func (m *Manager) Subscribe(fn func(Event)) (cancel func()) {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	if m.closing.Load() {
		return func() {}
	}
	s := &subscriber{
		m:    m,
		fn:   fn,
		max:  uint64(1) << bits.Len(uint(m.subBuffer-1)),
		wake: make(chan struct{}, 1),
	}
	s.ring.Store(newEventRing(min(initialRing, s.max)))
	s.cur = s.ring.Load()
	old := *m.subs.Load()
	subs := make([]*subscriber, len(old), len(old)+1)
	copy(subs, old)
	subs = append(subs, s)
	m.subs.Store(&subs)
	m.subWG.Add(1)
	go s.run()
	return s.cancel
}

// publish is the function the store calls with every committed change.
func (m *Manager) publish(e Event) {
	if h := m.hooks.OnTransition; h != nil {
		h(e)
	}
	for _, s := range *m.subs.Load() {
		s.push(e)
	}
}

// droppedEvents is Stats().DroppedEvents: the drops counted, and those the
// subscribers' goroutines have not reached yet (see subscriber.take). Every
// subscriber's mu is held while both are read, so that a drop being counted
// meanwhile is counted once.
func (m *Manager) droppedEvents() uint64 {
	subs := *m.subs.Load()
	for _, s := range subs {
		s.mu.Lock()
	}
	n := m.dropped.Load()
	for _, s := range subs {
		if s.state.Load() == subRunning {
			n += s.overflow(s.tail.Load())
		}
		s.mu.Unlock()
	}
	return n
}

// subSpins is how many times an idle subscriber yields before it parks.
const subSpins = 16

// The values of subscriber.idle.
const (
	idleActive = iota
	idleSpinning
	idleParked
)

// initialRing is the number of events a new subscriber's queue holds before
// it first grows.
const initialRing = 64

const (
	subRunning = iota
	subDraining
	subCancelled
)

// subscriber is one subscription: a queue of undelivered events, drained by
// the subscription's goroutine.
//
// The queue is a ring of cells that transitions append to without a lock,
// so that transitions on different cores do not wait for each other: a
// push takes the next position with one atomic add on tail, then fills the
// cell of that position, which the goroutine then empties; each cell's seq
// says which position it holds and whether it is free, being written or
// read (busy), or full (Vyukov's bounded queue). Positions are handed out in
// the order pushes happen, so that one session's events (pushed one after
// the other under the session's lock) and any events pushed one after the
// other keep their order.
//
// The ring starts small and doubles, under growMu, when a push finds the
// cell of its position still holding an undelivered event, up to max (the
// SubscriberBuffer, rounded up to a power of two). From then on the queue
// holds the newest max events: position p is dropped once position p+max
// is taken. A push at the bound takes over the cell of the event it
// supersedes; the goroutine skips every dropped position, counting it, when
// it gets there. Pushes never wait for fn; at worst one waits for another
// push, or the goroutine, that is in the middle of copying an event in or
// out of the same cell.
type subscriber struct {
	m    *Manager
	fn   func(Event)
	max  uint64 // the bound of the queue: a power of two
	wake chan struct{}

	_     [64]byte
	tail  atomic.Uint64 // the next position to hand out: the pushes so far
	_     [56]byte
	ring  atomic.Pointer[eventRing] // the current ring; nil once cancelled
	state atomic.Int32
	_     [52]byte
	// idle says whether the goroutine is looking for work (idleSpinning)
	// or waiting on wake (idleParked); a push or state change that finds it
	// so sets it back to idleActive, and sends the one wake-up to a parked
	// goroutine. While the goroutine is busy pushes only read it, and while
	// it spins it reads only this: idle waits stay off tail and the cells
	// that pushes write.
	idle atomic.Int32
	_    [60]byte

	growMu sync.Mutex

	// The goroutine's side, guarded by mu so that cancel and Stats see a
	// consistent head; the goroutine holds mu while it takes a batch, never
	// while it calls fn.
	mu   sync.Mutex
	head uint64     // the next position to deliver
	cur  *eventRing // the ring head is read from (the current one, or one it replaced)
}

// eventRing is the subscriber's ring of cells. When it grows, every cell
// is moved to a ring twice its size (next) and left marked cellMoved.
type eventRing struct {
	cells []eventCell
	mask  uint64
	next  atomic.Pointer[eventRing]
}

// eventCell is one position of the ring. It is not padded to cache lines:
// neighbouring positions pushed from different cores then share a line,
// but a padded ring (128 bytes a cell instead of 88) measured more cache
// misses, not fewer, as the queue of a subscriber that runs every few
// milliseconds spans hundreds of kilobytes.
type eventCell struct {
	seq atomic.Uint64 // position<<2 | kind
	ev  Event
}

// The kinds of a cell's seq.
const (
	cellFree  = 0 // waiting for the event of its position
	cellBusy  = 1 // a push is writing its event in, or the goroutine reading it out, or grow copying it
	cellFull  = 2 // holds the event of its position
	cellMoved = 3 // the ring was replaced by next: look there
)

func newEventRing(n uint64) *eventRing {
	r := &eventRing{cells: make([]eventCell, n), mask: n - 1}
	for i := range r.cells {
		r.cells[i].seq.Store(uint64(i) << 2) // position i, free
	}
	return r
}

// push appends e to the queue.
func (s *subscriber) push(e Event) {
	if s.state.Load() != subRunning {
		return
	}
	p := s.tail.Add(1) - 1
	r := s.ring.Load()
	if r == nil {
		return
	}
	// The common case, the cell free for p, in one compare-and-swap: a load
	// first would fetch the cell's cache line, last written by the
	// goroutine or a push on another core, twice (to read, then to write).
	// Anything else takes the loop below, which reads the cell first.
	if c := &r.cells[p&r.mask]; c.seq.CompareAndSwap(p<<2|cellFree, p<<2|cellBusy) {
		c.ev = e
		c.seq.Store(p<<2 | cellFull)
		s.signal()
		return
	}
	for r != nil {
		c := &r.cells[p&r.mask]
		seq := c.seq.Load()
		pos, kind := seq>>2, seq&3
		switch {
		case kind == cellMoved:
			r = r.next.Load()
			continue
		case pos > p:
			// A push max positions later took the cell first: this event
			// is already dropped (the goroutine counts it).
			return
		case kind == cellBusy:
			// An older event is being written in, read out or copied:
			// a matter of a few stores.
			runtime.Gosched()
			continue
		case pos < p && uint64(len(r.cells)) < s.max:
			// The cell still holds an undelivered event: grow.
			r = s.grow(r)
			continue
		}
		// The cell is free for p, or belongs to an older position that p,
		// max positions later, drops (if that push has not finished yet,
		// it will find its event dropped).
		if !c.seq.CompareAndSwap(seq, p<<2|cellBusy) {
			continue
		}
		c.ev = e
		c.seq.Store(p<<2 | cellFull)
		s.signal()
		return
	}
}

// grow replaces r, the current ring, by a ring twice its size and returns
// the current ring (nil once cancelled).
func (s *subscriber) grow(r *eventRing) *eventRing {
	s.growMu.Lock()
	defer s.growMu.Unlock()
	if cur := s.ring.Load(); cur != r {
		return cur // grown already, or cancelled
	}
	n := uint64(len(r.cells))
	nr := newEventRing(2 * n)
	r.next.Store(nr)
	// Cell i holds, or waits for, position pos ≡ i (mod n): in the new
	// ring pos keeps its state and pos+n, in the other cell of the same
	// residue, is free. Each cell is made busy while it is copied, so that
	// a push or the goroutine that finds it so waits, then finds it moved.
	for i := range r.cells {
		c := &r.cells[i]
		for {
			seq := c.seq.Load()
			pos, kind := seq>>2, seq&3
			if kind == cellBusy {
				runtime.Gosched() // an event is being copied in or out
				continue
			}
			if !c.seq.CompareAndSwap(seq, pos<<2|cellBusy) {
				continue
			}
			a, b := &nr.cells[pos&nr.mask], &nr.cells[(pos+n)&nr.mask]
			if kind == cellFull {
				a.ev = c.ev
			}
			a.seq.Store(seq)
			b.seq.Store((pos + n) << 2)
			c.seq.Store(cellMoved)
			break
		}
	}
	s.ring.Store(nr)
	return nr
}

// signal tells the goroutine, if it is idle, that there is something to
// look at.
func (s *subscriber) signal() {
	for {
		switch s.idle.Load() {
		case idleActive:
			return
		case idleSpinning:
			if s.idle.CompareAndSwap(idleSpinning, idleActive) {
				return
			}
			// Parked meanwhile, or signalled by another push: look again.
		case idleParked:
			if s.idle.CompareAndSwap(idleParked, idleActive) {
				s.wake <- struct{}{}
			}
			return // the wake-up is sent, by this push or another
		}
	}
}

// overflow is the number of positions before tail-max that the goroutine
// has not passed yet: dropped, not yet counted. s.mu is held.
func (s *subscriber) overflow(tail uint64) uint64 {
	if tail-s.head > s.max {
		return tail - s.max - s.head
	}
	return 0
}

// take moves the next events of the queue, up to cap(batch), into batch,
// and counts the dropped positions it passes. It stops at a position whose
// push has not finished. s.mu is held.
func (s *subscriber) take(batch []Event) []Event {
	t := s.tail.Load()
	for s.head < t && len(batch) < cap(batch) {
		if n := s.overflow(t); n > 0 {
			s.head += n
			s.m.dropped.Add(n)
			continue
		}
		h := s.head
		c := &s.cur.cells[h&s.cur.mask]
		seq := c.seq.Load()
		pos, kind := seq>>2, seq&3
		switch {
		case kind == cellMoved:
			s.cur = s.cur.next.Load()
		case pos > h: // taken over by a push max positions later
			s.head++
			s.m.dropped.Add(1)
		case pos == h && kind == cellFull:
			if c.seq.CompareAndSwap(seq, h<<2|cellBusy) {
				batch = append(batch, c.ev)
				c.ev = Event{}
				c.seq.Store((h + uint64(len(s.cur.cells))) << 2) // free for the next lap
				s.head++
			}
		default: // the push of h has not finished
			return batch
		}
	}
	return batch
}

// ready reports whether take would make progress, or the state changed.
// It runs on the goroutine, which alone writes head and cur.
func (s *subscriber) ready() bool {
	if s.state.Load() != subRunning {
		return true
	}
	t := s.tail.Load()
	if t == s.head {
		return false
	}
	if t-s.head > s.max {
		return true
	}
	seq := s.cur.cells[s.head&s.cur.mask].seq.Load()
	return seq&3 == cellMoved || seq>>2 > s.head || seq == s.head<<2|cellFull
}

// wait waits until a push or a state change signals, unless ready already.
// Events of one call come microseconds apart: it yields a few times before
// parking, so that the transitions rarely pay for waking the goroutine up.
func (s *subscriber) wait() {
	s.idle.Store(idleSpinning)
	if s.ready() {
		s.idle.Store(idleActive)
		return
	}
	for range subSpins {
		runtime.Gosched()
		if s.idle.Load() == idleActive {
			return
		}
	}
	if s.idle.CompareAndSwap(idleSpinning, idleParked) {
		<-s.wake
	}
}

// setState moves the subscription out of running and wakes its goroutine.
func (s *subscriber) setState(state int32) {
	s.mu.Lock()
	if s.state.Load() != subRunning {
		s.mu.Unlock()
		return
	}
	if state == subCancelled {
		// The undelivered events are discarded; those the queue had
		// dropped already still count.
		s.m.dropped.Add(s.overflow(s.tail.Load()))
		s.ring.Store(nil)
	}
	s.state.Store(state)
	s.mu.Unlock()
	s.signal()
}

func (s *subscriber) cancel() {
	s.setState(subCancelled)
	m := s.m
	m.subMu.Lock()
	old := *m.subs.Load()
	subs := make([]*subscriber, 0, len(old))
	for _, o := range old {
		if o != s {
			subs = append(subs, o)
		}
	}
	m.subs.Store(&subs)
	m.subMu.Unlock()
}

// finish delivers what is queued, then ends the subscription (Close).
func (s *subscriber) finish() { s.setState(subDraining) }

func (s *subscriber) run() {
	defer s.m.subWG.Done()
	batch := make([]Event, 0, 64)
	for {
		s.mu.Lock()
		state := s.state.Load()
		if state == subCancelled {
			s.cur = nil
			s.mu.Unlock()
			return
		}
		batch = s.take(batch)
		empty := s.head == s.tail.Load()
		s.mu.Unlock()
		if len(batch) == 0 {
			switch {
			case state == subRunning:
				s.wait()
			case empty:
				return // drained
			default:
				runtime.Gosched() // a push is finishing
			}
			continue
		}
		for i := range batch {
			if s.state.Load() == subCancelled {
				return
			}
			s.fn(batch[i])
		}
		clear(batch)
		batch = batch[:0]
	}
}
