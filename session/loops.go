package session

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
)

// dueBatch is how many due timers the loop takes from the store at a time.
const dueBatch = 256

// storeRetry is how long the timer loop waits after a Store error.
const storeRetry = time.Second

// timerLoop is the one goroutine that fires every session's timers: it asks
// the store for the sessions due now, acts on them, and sleeps until the
// next deadline or until the store reports an earlier one.
func (m *Manager) timerLoop() {
	defer m.loops.Done()
	ctx := context.Background()
	buf := make([]Due, 0, dueBatch)
	t := m.clock.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		default:
		}
		now := m.clock.Now()
		due, next, err := m.store.Due(ctx, now, buf)
		// One reading serves a run of forgotten sessions: forgetting one is
		// a map delete under a lock in a MemoryStore (one round trip in a
		// distributed store), so their forget events carry the time the
		// batch was found due, which precedes each delete by at most the
		// time the batch takes. Closing a session may wait on the limiter,
		// so what follows a close takes a new reading. The wait for the
		// next deadline is measured from a new reading too: Due itself may
		// be a round trip.
		at := now
		for _, d := range due {
			if m.fire(ctx, d, at) {
				at = m.clock.Now()
			}
		}
		clear(due) // drop references to the records
		if err != nil {
			m.background(BackgroundDue, err)
			next = now.Add(storeRetry)
		}
		var fired <-chan time.Time
		if !next.IsZero() {
			wait := next.Sub(m.clock.Now())
			if wait <= 0 {
				continue
			}
			t.Reset(wait)
			fired = t.C()
		} else {
			t.Stop()
		}
		select {
		case <-m.stop:
			return
		case <-fired:
		case <-m.store.Wake():
		}
	}
}

// fire acts on one due timer; now is a recent reading of the clock, the
// time a retention timer forgets its session at. It reports whether it did
// more than that (so that now is stale). A session that moved on since it
// was found due makes the conditional change fail (ErrConflict, or its
// state's error): the store has re-armed its timers and there is nothing to
// do. Any other failure goes to Hooks.OnBackgroundError.
func (m *Manager) fire(ctx context.Context, d Due, now time.Time) (slow bool) {
	rec := d.Record
	if d.Timeout == TimeoutRetention {
		_, err := m.store.Delete(ctx, rec.Account, rec.ID, rec.Epoch, now)
		m.background(BackgroundForget, err)
		return false
	}
	if d.Timeout == TimeoutOrphaned {
		if rec.State != fsm.Closing {
			return false // only a closing session is ever orphaned
		}
		// Whoever moved it to closing is gone: finish the close for them.
		// Releasing twice is harmless; the epoch makes sure that a closer
		// still at work and this timer do not both close it. A kept slot
		// is never left behind: when the release fails, the session stays
		// closing and is reported again.
		if err := m.release(ctx, limits.Lease{Account: rec.Account, SessionID: rec.ID}); err != nil && m.unkept != nil {
			m.background(BackgroundFinishClose, err)
			return true
		}
		closed, _, err := m.store.Transition(ctx, rec.Account, rec.ID, Change{Event: fsm.EventClosed, At: m.clock.Now(), Epoch: rec.Epoch})
		if err == nil {
			m.reportClosed(closed.Info)
		}
		m.background(BackgroundFinishClose, err)
		return true
	}
	_, err := m.closeSession(ctx, rec.Account, rec.ID, d.Timeout.Reason(), rec.Epoch)
	m.background(BackgroundTimerClose, err)
	return true
}

// observeLease learns the limiter's lease lifetime from a grant, so that
// leases are renewed at a third of it (unless Config.LeaseRenewInterval is
// set).
func (m *Manager) observeLease(l limits.Lease, now time.Time) {
	if m.renewFixed > 0 || l.Expires.IsZero() {
		return
	}
	every := l.Expires.Sub(now) / 3
	if every <= 0 {
		return
	}
	m.renewMu.Lock()
	shorter := m.renewEvery == 0 || every < m.renewEvery
	if shorter {
		m.renewEvery = every
	}
	m.renewMu.Unlock()
	if shorter {
		select {
		case m.renewWake <- struct{}{}:
		default:
		}
	}
}

// renewInterval returns how often leases are renewed; 0 while unknown.
func (m *Manager) renewInterval() time.Duration {
	m.renewMu.Lock()
	defer m.renewMu.Unlock()
	return m.renewEvery
}

// renewLoop is the one goroutine that renews the leases of every session
// not yet closed (with a SharedStore: that retries the Keep of the slots
// not kept yet).
func (m *Manager) renewLoop() {
	defer m.loops.Done()
	t := m.clock.NewTimer(time.Hour)
	defer t.Stop()
	for {
		var fired <-chan time.Time
		if every := m.renewInterval(); every > 0 {
			t.Reset(every)
			fired = t.C()
		} else {
			t.Stop()
		}
		select {
		case <-m.stop:
			return
		case <-m.renewWake:
		case <-fired:
			m.renewAll()
		}
	}
}

// renewAll renews every open lease. A lease the limiter says has expired
// no longer holds a slot, so its session is closed (ReasonLeaseLost); any
// other failure (an unreachable backend) leaves the session running and is
// retried on the next round. Failures go to Hooks.OnBackgroundError.
func (m *Manager) renewAll() {
	ctx := context.Background()
	if m.unkept != nil {
		m.keepUnkept(ctx)
		return
	}
	err := m.store.Range(ctx, func(rec Record) bool {
		if rec.State.Open() {
			err := m.renew(ctx, limits.Lease{Account: rec.Account, SessionID: rec.ID})
			if errors.Is(err, limits.ErrLeaseExpired) {
				_, err = m.closeSession(ctx, rec.Account, rec.ID, ReasonLeaseLost, 0)
			}
			m.background(BackgroundRenew, err)
		}
		select {
		case <-m.stop:
			return false
		default:
			return true
		}
	})
	m.background(BackgroundRenew, err)
}

// keepUnkept retries the Keep of the slots whose Keep failed (see
// keepSlot). A lease lost meanwhile closes its session (ReasonLeaseLost);
// any other failure waits for the next round. Failures go to
// Hooks.OnBackgroundError (BackgroundRenew).
func (m *Manager) keepUnkept(ctx context.Context) {
	for _, l := range m.unkept.snapshot() {
		err := m.keep(ctx, l)
		if err != nil && !errors.Is(err, limits.ErrLeaseExpired) {
			m.background(BackgroundRenew, err)
			continue
		}
		m.unkept.remove(l.SessionID)
		if err != nil {
			_, err = m.closeSession(ctx, l.Account, l.SessionID, ReasonLeaseLost, 0)
			m.background(BackgroundRenew, err)
		}
	}
}

// unkeptSlots are the leases of this node's sessions, recorded in a
// SharedStore, whose Keep failed, by session id. It is safe for concurrent
// use by multiple goroutines.
type unkeptSlots struct {
	mu     sync.Mutex
	leases map[string]limits.Lease
}

func (u *unkeptSlots) add(l limits.Lease) {
	u.mu.Lock()
	u.leases[l.SessionID] = l
	u.mu.Unlock()
}

func (u *unkeptSlots) remove(id string) {
	u.mu.Lock()
	delete(u.leases, id)
	u.mu.Unlock()
}

func (u *unkeptSlots) snapshot() []limits.Lease {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]limits.Lease, 0, len(u.leases))
	for _, l := range u.leases {
		out = append(out, l)
	}
	return out
}
