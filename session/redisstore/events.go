package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// resyncBatch is how many sessions one resync script reads.
const resyncBatch = 512

// resyncTimeout bounds one resync script.
const resyncTimeout = 5 * time.Second

// tombstoneTTL is how long a forgotten session is remembered, so that the
// channel's copies of its events, arriving after the local delivery of its
// last one, are dropped.
const tombstoneTTL = time.Minute

// seen is what was last delivered of one session.
type seen struct {
	account string
	state   fsm.State
	epoch   uint64
	reason  session.Reason
	gone    bool // forgotten: a tombstone until tombstoneTTL passes
}

// tombstone is a forgotten session and when it was forgotten.
type tombstone struct {
	id string
	at time.Time
}

// listen delivers the cluster's events to the Manager in the order Redis
// published them (the order of the commits). After the subscription
// reconnects, the sessions it knows are read again and what changed
// meanwhile is delivered as one event per session.
func (s *Store) listen(ready chan struct{}) {
	defer s.wg.Done()
	subscribed := false
	ch := s.ps.ChannelWithSubscriptions(redis.WithChannelSize(4096))
	for msg := range ch {
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if !subscribed {
				subscribed = true
				close(ready)
				continue
			}
			if _, err := s.resync(); err != nil {
				s.resyncPending.Store(true) // the loss checker tries again
			}
		case *redis.Message:
			ev, score, err := parseEvent(m.Payload)
			if err != nil {
				continue
			}
			s.announced(score)
			s.deliver(ev)
		}
	}
}

// deliver passes an event heard on the channel to the Manager unless it is
// not newer than what was delivered for its session (a change made through
// this node may have been delivered by the call already). The channel
// carries every commit in order, so each session's events reach the
// Manager once and in epoch order. The lock serialises deliveries, as a
// MemoryStore's session lock does.
func (s *Store) deliver(ev session.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliverLocked(ev)
}

// deliverLocal passes on a change this node just made, before the call
// returns, when it is the session's next event (the previous one was
// delivered, or it is the session's creation); otherwise (another node's
// earlier change is still on its way) the channel delivers both, in order.
func (s *Store) deliverLocal(ev session.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.known[ev.SessionID]
	if (k == nil && ev.Epoch == 1) || (k != nil && !k.gone && ev.Epoch == k.epoch+1) {
		s.deliverLocked(ev)
	}
}

func (s *Store) deliverLocked(ev session.Event) {
	if s.notify == nil {
		return
	}
	now := time.Now()
	for len(s.tombs) > 0 && now.Sub(s.tombs[0].at) > tombstoneTTL {
		if k := s.known[s.tombs[0].id]; k != nil && k.gone {
			delete(s.known, s.tombs[0].id)
		}
		s.tombs = s.tombs[1:]
	}
	k := s.known[ev.SessionID]
	if k != nil && (ev.Epoch <= k.epoch || k.gone) {
		return
	}
	if k == nil {
		k = &seen{account: ev.Account}
		s.known[ev.SessionID] = k
	}
	k.state, k.epoch, k.reason = ev.To, ev.Epoch, ev.Reason
	if ev.To == fsm.Closed || ev.Forgotten() {
		s.cut.done(ev.SessionID)
	}
	if ev.Forgotten() {
		k.gone = true
		s.tombs = append(s.tombs, tombstone{id: ev.SessionID, at: now})
	}
	s.notify(ev)
}

// resync reads the sessions the listener knows and delivers, for each that
// changed while the subscription was down, one event from the state last
// delivered to the current one (two for one closed meanwhile: closing,
// then closed, with its reason). A session gone meanwhile was forgotten at
// the end of its retention if it was closed, or if Redis holds its
// forgotten note (see forgottenLua): it gets what it missed of closing and
// closed with its own reason, then is forgotten. One gone while open, with
// no note, was lost
// with Redis's data, and gets closing and closed with
// session.ReasonStoreLost (closed with its recorded reason if it was
// closing already) before it is forgotten. Then it delivers the open
// sessions it had not heard of (see discover). It returns how many open
// sessions it found lost.
func (s *Store) resync() (lost int, err error) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.known))
	for id, k := range s.known {
		if !k.gone {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	now := time.Now()
	for len(ids) > 0 {
		n := min(len(ids), resyncBatch)
		batch := ids[:n]
		ids = ids[n:]
		args := make([]any, 0, n+1)
		args = append(args, s.prefix)
		for _, id := range batch {
			args = append(args, id)
		}
		ctx, cancel := context.WithTimeout(context.Background(), resyncTimeout)
		res, err := resyncScript.Run(ctx, s.client, []string{s.timers}, args...).Slice()
		cancel()
		if err != nil || len(res) != len(batch) {
			if err == nil {
				err = fmt.Errorf("redisstore: resync read %d sessions of %d", len(res), len(batch))
			}
			return lost, err // the next reconnection or loss check tries again
		}
		s.mu.Lock()
		for i, id := range batch {
			row, _ := res[i].([]any)
			if len(row) != 3 && len(row) != 4 {
				continue
			}
			state, _ := row[0].(int64)
			epoch, _ := row[1].(int64)
			reason, _ := row[2].(int64)
			k := s.known[id]
			if k == nil || k.gone {
				continue // forgotten meanwhile
			}
			if epoch == 0 && len(row) == 4 {
				s.forgottenLocked(id, k, session.Reason(reason), now)
				continue
			}
			if epoch == 0 {
				if k.state != fsm.Closed {
					lost++
					s.lostSinceReport++
				}
				s.lostLocked(id, k, now)
				continue
			}
			if uint64(epoch) > k.epoch {
				to, r := fsm.State(state), session.Reason(reason)
				if to == fsm.Closed && k.state != fsm.Closing && uint64(epoch)-1 > k.epoch {
					// Closed meanwhile: its closing (the epoch before)
					// comes first, so that clients hear why before the
					// end.
					s.deliverLocked(session.Event{SessionID: id, Account: k.account, From: k.state, To: fsm.Closing,
						Epoch: uint64(epoch) - 1, At: now, Reason: r})
				}
				s.deliverLocked(session.Event{SessionID: id, Account: k.account, From: k.state, To: to,
					Epoch: uint64(epoch), At: now, Reason: r})
			}
		}
		s.mu.Unlock()
	}
	return lost, s.discover(now)
}

// lostLocked delivers the end of a session that is no longer in Redis:
// closing and closed with ReasonStoreLost if it was open (closed alone,
// with its recorded reason, if it was closing), then forgotten. s.mu is
// held.
func (s *Store) lostLocked(id string, k *seen, now time.Time) {
	next := func(to fsm.State, r session.Reason) {
		s.deliverLocked(session.Event{SessionID: id, Account: k.account, From: k.state, To: to,
			Epoch: k.epoch + 1, At: now, Reason: r})
	}
	switch k.state {
	case fsm.New, fsm.Connecting, fsm.Connected:
		next(fsm.Closing, session.ReasonStoreLost)
		next(fsm.Closed, session.ReasonStoreLost)
	case fsm.Closing:
		r := k.reason
		if r == session.ReasonNone {
			r = session.ReasonStoreLost
		}
		next(fsm.Closed, r)
	}
	next(fsm.Unknown, k.reason)
}

// forgottenLocked delivers the end of a session closed with reason and
// forgotten while the subscription was down: what it missed of closing
// and closed, then forgotten. s.mu is held.
func (s *Store) forgottenLocked(id string, k *seen, reason session.Reason, now time.Time) {
	next := func(to fsm.State) {
		s.deliverLocked(session.Event{SessionID: id, Account: k.account, From: k.state, To: to,
			Epoch: k.epoch + 1, At: now, Reason: reason})
	}
	switch k.state {
	case fsm.New, fsm.Connecting, fsm.Connected:
		next(fsm.Closing)
		next(fsm.Closed)
	case fsm.Closing:
		next(fsm.Closed)
	}
	next(fsm.Unknown)
}

// parseEvent decodes "from,to,epoch,at,reason,score,len(id),<id><account>".
func parseEvent(p string) (session.Event, int64, error) {
	var n [7]int64
	rest := p
	for i := range n {
		field, tail, ok := strings.Cut(rest, ",")
		if !ok {
			return session.Event{}, 0, fmt.Errorf("redisstore: short event %q", p)
		}
		v, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return session.Event{}, 0, fmt.Errorf("redisstore: event field %d: %w", i, err)
		}
		n[i], rest = v, tail
	}
	idLen := n[6]
	if idLen <= 0 || idLen > int64(len(rest)) {
		return session.Event{}, 0, fmt.Errorf("redisstore: event id length %d", idLen)
	}
	return session.Event{
		SessionID: rest[:idLen],
		Account:   rest[idLen:],
		From:      fsm.State(n[0]),
		To:        fsm.State(n[1]),
		Epoch:     uint64(n[2]),
		At:        fromNanos(n[3]),
		Reason:    session.Reason(n[4]),
	}, n[5], nil
}
