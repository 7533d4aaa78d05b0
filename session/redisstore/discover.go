package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// discover finds, after the subscription was down, the open sessions this
// node has not heard of (created through another node meanwhile) and
// delivers for each one event from fsm.Unknown to its current state, so
// that the Manager's subscribers hear of it and its later events follow.
// It reads the ids in the deadline set, which holds every session with a
// deadline (a join, idle or duration timeout, or a closing grace); a
// session with none is learnt when a call reads it (Get).
func (s *Store) discover(now time.Time) error {
	var fresh []string
	for start := int64(0); ; start += resyncBatch {
		ctx, cancel := context.WithTimeout(context.Background(), resyncTimeout)
		ids, err := s.client.ZRange(ctx, s.timers, start, start+resyncBatch-1).Result()
		cancel()
		if err != nil {
			return err
		}
		s.mu.Lock()
		for _, id := range ids {
			if s.known[id] == nil {
				fresh = append(fresh, id)
			}
		}
		s.mu.Unlock()
		if len(ids) < resyncBatch {
			break
		}
	}
	for len(fresh) > 0 {
		n := min(len(fresh), resyncBatch)
		batch := fresh[:n]
		fresh = fresh[n:]
		recs, err := func() ([]session.Record, error) {
			ctx, cancel := context.WithTimeout(context.Background(), resyncTimeout)
			defer cancel()
			return s.read(ctx, batch)
		}()
		if err != nil {
			return fmt.Errorf("redisstore: discover: %w", err)
		}
		s.mu.Lock()
		for _, r := range recs {
			if !r.State.Open() || s.known[r.ID] != nil {
				continue // closed, or heard of meanwhile
			}
			s.deliverLocked(session.Event{SessionID: r.ID, Account: r.Account, From: fsm.Unknown, To: r.State,
				Epoch: r.Epoch, At: now, Reason: r.Reason})
		}
		s.mu.Unlock()
	}
	return nil
}
