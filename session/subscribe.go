package session

import "sync"

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
	if m.isClosing() {
		return func() {}
	}
	s := &subscriber{m: m, fn: fn, max: m.subBuffer}
	s.wake = sync.NewCond(&s.mu)
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

// The states of a subscription.
const (
	subRunning   = iota
	subDraining  // Close: deliver what is queued, then stop
	subCancelled // cancel: stop, discarding what is queued
)

// subBatch is the most events the goroutine takes out of the queue at once.
const subBatch = 64

// subscriber is one subscription: a bounded FIFO of undelivered events under
// a mutex, drained by the subscription's goroutine. A push appends (dropping
// the oldest event when the queue is full) and signals the condition the
// goroutine waits on; the goroutine takes up to subBatch events at a time and calls fn
// without the lock. Pushes of one session happen one after the other (under
// the session's lock in the store), so the queue keeps each session's order.
type subscriber struct {
	m   *Manager
	fn  func(Event)
	max int // the bound of the queue (Config.SubscriberBuffer)

	mu    sync.Mutex
	wake  *sync.Cond // on mu: the queue or the state changed
	queue eventQueue
	state int
}

// push appends e to the queue.
func (s *subscriber) push(e Event) {
	s.mu.Lock()
	if s.state != subRunning {
		s.mu.Unlock()
		return
	}
	if s.queue.len() == s.max {
		s.queue.pop()
		s.m.dropped.Add(1)
	}
	s.queue.push(e)
	s.mu.Unlock()
	s.wake.Signal()
}

// setState moves the subscription out of running and wakes its goroutine.
func (s *subscriber) setState(state int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == subCancelled || (s.state == subDraining && state == subDraining) {
		return
	}
	s.state = state
	if state == subCancelled {
		s.queue = eventQueue{} // undelivered events are discarded, not dropped
	}
	s.wake.Signal()
}

// cancelled reports whether cancel was called: checked between two calls
// of fn.
func (s *subscriber) cancelled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == subCancelled
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
	batch := make([]Event, 0, subBatch)
	for {
		s.mu.Lock()
		if s.state == subCancelled {
			s.mu.Unlock()
			return
		}
		for len(batch) < cap(batch) && s.queue.len() > 0 {
			batch = append(batch, s.queue.pop())
		}
		if len(batch) == 0 {
			if s.state == subDraining {
				s.mu.Unlock()
				return
			}
			s.wake.Wait()
			s.mu.Unlock()
			continue
		}
		s.mu.Unlock()
		for i := range batch {
			if i > 0 && s.cancelled() {
				return
			}
			s.fn(batch[i])
		}
		clear(batch) // drop references to the events' strings
		batch = batch[:0]
	}
}

// eventQueue is a FIFO of events in a ring that doubles when full (from
// initialQueue); the subscriber bounds its length. The zero value is empty.
type eventQueue struct {
	buf  []Event
	head int // index of the oldest event
	n    int
}

// initialQueue is the number of events a queue holds before it first grows.
const initialQueue = 64

func (q *eventQueue) len() int { return q.n }

func (q *eventQueue) push(e Event) {
	if q.n == len(q.buf) {
		buf := make([]Event, max(initialQueue, 2*len(q.buf)))
		k := copy(buf, q.buf[q.head:])
		copy(buf[k:], q.buf[:q.head])
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
}

// pop removes and returns the oldest event; the queue must not be empty.
func (q *eventQueue) pop() Event {
	e := q.buf[q.head]
	q.buf[q.head] = Event{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return e
}
