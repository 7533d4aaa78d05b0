package sessiontest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/streamsession/streamsession/session"
)

// Tap lets a test wait until every subscriber has seen every event the
// Manager has published, outside a testing/synctest bubble (inside one,
// synctest.Wait does it). Install OnTransition as the Manager's
// session.Hooks.OnTransition (Chain it with your own), subscribe through
// Tap.Subscribe, and call Settle before you look at what the subscribers
// did. A Tap is safe for concurrent use by multiple goroutines.
type Tap struct {
	mu        sync.Mutex
	published uint64
	subs      []*tapSub
	changed   chan struct{} // closed and replaced on every delivery
}

// tapSub counts the events one subscription was called with; its fields are
// guarded by the Tap's mutex.
type tapSub struct {
	n         int    // the subscription's number, from 1
	base      uint64 // events published before it subscribed
	seen      uint64
	cancelled bool
}

// NewTap returns a Tap.
func NewTap() *Tap { return &Tap{} }

// OnTransition counts one published Event: use it as (or call it from) the
// Manager's session.Hooks.OnTransition, which the Manager calls for every
// Event it hands to its subscribers.
func (t *Tap) OnTransition(session.Event) {
	t.mu.Lock()
	t.published++
	t.mu.Unlock()
}

// Subscribe subscribes fn to m's events (Manager.Subscribe) and counts the
// events fn has returned from. Events published before Subscribe are not
// waited for. Subscribe before the traffic you settle: an event published
// while Subscribe runs may be both counted as published before it and
// handed to fn (the Manager calls OnTransition before it reads its list of
// subscribers), and then Settle waits for one event fewer than it should.
// cancel ends the subscription, which Settle then ignores.
func (t *Tap) Subscribe(m *session.Manager, fn func(session.Event)) (cancel func()) {
	// Subscribing under the lock holds back the OnTransition of events
	// published meanwhile, so that none is missed by both base and fn.
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &tapSub{n: len(t.subs) + 1, base: t.published}
	t.subs = append(t.subs, s)
	stop := m.Subscribe(func(e session.Event) {
		fn(e)
		t.mu.Lock()
		s.seen++
		if t.changed != nil {
			close(t.changed)
			t.changed = nil
		}
		t.mu.Unlock()
	})
	return func() {
		stop()
		t.mu.Lock()
		s.cancelled = true
		if t.changed != nil {
			close(t.changed)
			t.changed = nil
		}
		t.mu.Unlock()
	}
}

// Settle waits until every live subscription made through Subscribe has
// returned from fn for every event published before Settle was called. When
// ctx ends first it returns an error saying which subscriptions are behind
// (one that fell more than Config.SubscriberBuffer events behind lost
// events for good: see Manager.Stats).
func (t *Tap) Settle(ctx context.Context) error {
	t.mu.Lock()
	target := t.published
	t.mu.Unlock()
	for {
		t.mu.Lock()
		var behind []string
		for _, s := range t.subs {
			if want := target - min(s.base, target); !s.cancelled && s.seen < want {
				behind = append(behind, fmt.Sprintf("subscription %d has seen %d of %d events", s.n, s.seen, want))
			}
		}
		if len(behind) == 0 {
			t.mu.Unlock()
			return nil
		}
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("sessiontest: Settle: %s: %w", strings.Join(behind, ", "), ctx.Err())
		}
	}
}

// Chain returns one OnTransition hook that calls each of fns in order, for
// a Manager that needs a Tap, a Recorder and hooks of its own.
func Chain(fns ...func(session.Event)) func(session.Event) {
	return func(e session.Event) {
		for _, fn := range fns {
			if fn != nil {
				fn(e)
			}
		}
	}
}
