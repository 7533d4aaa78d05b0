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
		ring: make([]Event, 64),
		max:  1 << bits.Len(uint(m.subBuffer-1)),
		wake: make(chan struct{}, 1),
	}
	if s.max < len(s.ring) {
		s.ring = make([]Event, s.max)
	}
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

// subSpins is how many times an idle subscriber yields before it parks.
const subSpins = 16

const (
	subRunning = iota
	subDraining
	subCancelled
)

// subscriber is one subscription: a ring buffer of undelivered events,
// guarded by mu, drained by its goroutine.
type subscriber struct {
	m    *Manager
	fn   func(Event)
	wake chan struct{} // one token per park

	cancelled atomic.Bool

	mu     sync.Mutex
	ring   []Event // len is a power of two, grown up to max
	head   int
	n      int
	max    int
	parked bool
	state  int
}

func (s *subscriber) push(e Event) {
	s.mu.Lock()
	if s.state != subRunning {
		s.mu.Unlock()
		return
	}
	if s.n == len(s.ring) {
		if len(s.ring) < s.max {
			s.grow()
		} else {
			s.ring[s.head] = Event{}
			s.head = (s.head + 1) & (len(s.ring) - 1)
			s.n--
			s.m.dropped.Add(1)
		}
	}
	s.ring[(s.head+s.n)&(len(s.ring)-1)] = e
	s.n++
	wake := s.parked
	s.parked = false
	s.mu.Unlock()
	if wake {
		s.wake <- struct{}{}
	}
}

func (s *subscriber) grow() {
	ring := make([]Event, 2*len(s.ring))
	for i := 0; i < s.n; i++ {
		ring[i] = s.ring[(s.head+i)&(len(s.ring)-1)]
	}
	s.ring, s.head = ring, 0
}

// setState moves the subscription out of running and wakes its goroutine.
func (s *subscriber) setState(state int) {
	s.mu.Lock()
	if s.state != subRunning {
		s.mu.Unlock()
		return
	}
	s.state = state
	if state == subCancelled {
		s.cancelled.Store(true)
		s.ring, s.head, s.n = nil, 0, 0
	}
	wake := s.parked
	s.parked = false
	s.mu.Unlock()
	if wake {
		s.wake <- struct{}{}
	}
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
		// Events of one call come microseconds apart: look again a few
		// times before parking, so that the transitions rarely pay for
		// waking this goroutine up.
		for spin := 0; s.n == 0 && s.state == subRunning && spin < subSpins; spin++ {
			s.mu.Unlock()
			runtime.Gosched()
			s.mu.Lock()
		}
		for s.n == 0 && s.state == subRunning {
			s.parked = true
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		if s.state == subCancelled || s.n == 0 {
			s.mu.Unlock()
			return
		}
		mask := len(s.ring) - 1
		for s.n > 0 && len(batch) < cap(batch) {
			batch = append(batch, s.ring[s.head])
			s.ring[s.head] = Event{}
			s.head = (s.head + 1) & mask
			s.n--
		}
		s.mu.Unlock()
		for i := range batch {
			if s.cancelled.Load() {
				return
			}
			s.fn(batch[i])
		}
		clear(batch)
		batch = batch[:0]
	}
}
