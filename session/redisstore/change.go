package redisstore

import (
	"context"
	"fmt"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// Script reply codes.
const (
	codeOK       = 0
	codeNotFound = 1
	codeState    = 2
	codeConflict = 3
)

// reply reads a {code, state, record} script reply.
func reply(id string, v any) (code int64, state fsm.State, rec session.Record, err error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return 0, 0, session.Record{}, fmt.Errorf("redisstore: unexpected script reply %T", v)
	}
	code, ok = list[0].(int64)
	if !ok {
		return 0, 0, session.Record{}, fmt.Errorf("redisstore: unexpected script code %T", list[0])
	}
	if code == codeNotFound {
		return code, fsm.Unknown, session.Record{}, nil
	}
	if len(list) != 3 {
		return 0, 0, session.Record{}, fmt.Errorf("redisstore: script reply of length %d", len(list))
	}
	st, ok := list[1].(int64)
	if !ok {
		return 0, 0, session.Record{}, fmt.Errorf("redisstore: unexpected script state %T", list[1])
	}
	r, err := decodeFlat(id, list[2])
	if err != nil {
		return 0, 0, session.Record{}, err
	}
	return code, fsm.State(st), r.Record, nil
}

// Transition implements session.Store: one script reads the session, looks
// the event up in the transition table compiled from fsm.Next, and writes
// the change when the epoch is still the one it read (or Change.Epoch, when
// set), announcing it on the cluster's event channel. A lost race on a
// conditional change is session.ErrConflict; a refused event is
// fsm.StateError of the current state; an unknown session (or another
// account's) is 10006; a Redis failure is 503/400558 (the change may or may
// not have been made: a closing session whose caller gave up is finished by
// the cluster after Config.ClosingGrace).
func (s *Store) Transition(ctx context.Context, account, id string, ch session.Change) (session.Record, fsm.State, error) {
	if err := checkID(account, id); err != nil {
		return session.Record{}, fsm.Unknown, err
	}
	if ch.Reason < 0 || ch.Reason > 255 {
		return session.Record{}, fsm.Unknown, invalid("Transition: reason %d", ch.Reason)
	}
	table, ok := tables[ch.Event]
	if !ok {
		table = refusedTable
	}
	if ch.Event == fsm.EventClose {
		// Recorded before the script runs: Redis may apply it and the
		// reply be lost.
		s.cut.begin(id, time.Now())
	}
	at := nanos(ch.At)
	keys := []string{s.recKey(id), s.acctKey(account), s.timers, s.closedKey(account)}
	res, err := transitionScript.Run(ctx, s.client, keys, account, ch.Epoch, table, itoa(at), ceilMs(at),
		int64(ch.Reason), s.newNonce(), s.cfg.ClosingGrace.Milliseconds(), s.prefix,
		s.cfg.RetentionSlack.Milliseconds(), id, s.channel, s.cfg.MaxClosedPerAccount).Result()
	if err != nil {
		return session.Record{}, fsm.Unknown, unavailable("transition", err)
	}
	code, state, rec, err := reply(id, res)
	if err != nil {
		return session.Record{}, fsm.Unknown, sserrors.ErrInternalServerError.WithCause(err)
	}
	switch code {
	case codeOK:
		s.deliverLocal(session.Event{SessionID: id, Account: account, From: state, To: rec.State, Epoch: rec.Epoch, At: fromNanos(at), Reason: rec.Reason})
		if rec.State == fsm.Closed {
			s.waitReplicas(ctx)
		}
		return rec, state, nil
	}
	if ch.Event == fsm.EventClose && state != fsm.Closing {
		s.cut.done(id) // this close did not take place
	}
	switch code {
	case codeNotFound:
		return session.Record{}, fsm.Unknown, sserrors.ErrSessionNotFound
	case codeState:
		return rec, state, fsm.StateError(state)
	case codeConflict:
		return rec, state, session.ErrConflict
	}
	return session.Record{}, fsm.Unknown, sserrors.ErrInternalServerError.WithCause(fmt.Errorf("redisstore: transition script answered %d", code))
}

// Touch implements session.Store: one script moves LastActivity of a
// connected session forward (never back) and returns the record. The
// session's idle deadline in Redis is not moved: when the old one comes,
// Due finds the later one and re-arms it.
func (s *Store) Touch(ctx context.Context, account, id string, at time.Time) (session.Record, error) {
	if err := checkID(account, id); err != nil {
		return session.Record{}, err
	}
	n := nanos(at)
	res, err := touchScript.Run(ctx, s.client, []string{s.recKey(id)}, account, itoa(max(n, 0)), ceilMs(n)).Slice()
	if err != nil {
		return session.Record{}, unavailable("touch", err)
	}
	if len(res) == 0 {
		return session.Record{}, sserrors.ErrInternalServerError.WithCause(fmt.Errorf("redisstore: empty touch reply"))
	}
	if code, _ := res[0].(int64); code == codeNotFound || len(res) != 2 {
		return session.Record{}, sserrors.ErrSessionNotFound
	}
	st, err := decodeFlat(id, res[1])
	if err != nil {
		return session.Record{}, sserrors.ErrInternalServerError.WithCause(err)
	}
	return st.Record, nil
}

// Delete implements session.Store: it forgets a closed session at epoch
// (else session.ErrConflict, or the state's error when it is not closed)
// and announces the last event.
func (s *Store) Delete(ctx context.Context, account, id string, epoch uint64, at time.Time) (session.Record, error) {
	if err := checkID(account, id); err != nil {
		return session.Record{}, err
	}
	keys := []string{s.recKey(id), s.acctKey(account), s.timers}
	res, err := deleteScript.Run(ctx, s.client, keys, account, epoch, itoa(nanos(at)), id, s.prefix, s.channel).Result()
	if err != nil {
		return session.Record{}, unavailable("delete", err)
	}
	code, state, rec, err := reply(id, res)
	if err != nil {
		return session.Record{}, sserrors.ErrInternalServerError.WithCause(err)
	}
	switch code {
	case codeOK:
		s.deliverLocal(session.Event{SessionID: id, Account: account, From: fsm.Closed, To: fsm.Unknown, Epoch: rec.Epoch + 1, At: fromNanos(nanos(at)), Reason: rec.Reason})
		return rec, nil
	case codeNotFound:
		return session.Record{}, sserrors.ErrSessionNotFound
	case codeState:
		return rec, fsm.StateError(state)
	case codeConflict:
		return rec, session.ErrConflict
	}
	return session.Record{}, sserrors.ErrInternalServerError.WithCause(fmt.Errorf("redisstore: delete script answered %d", code))
}

// Range implements session.Store: it visits the sessions created through
// this node (Config.NodeID) that are not closed yet, a page of
// Config.Batch at a time (one SSCAN and one pipelined read per page).
// Sessions handed to the cluster because this node was judged dead are no
// longer visited.
func (s *Store) Range(ctx context.Context, fn func(session.Record) bool) error {
	var cursor uint64
	for {
		ids, next, err := s.client.SScan(ctx, s.mine, cursor, "", int64(s.cfg.Batch)).Result()
		if err != nil {
			return unavailable("range", err)
		}
		if len(ids) > 0 {
			recs, err := s.read(ctx, ids)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.State == fsm.Closed {
					continue
				}
				if !fn(r) {
					return nil
				}
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// read returns the records of ids that still exist, in one round trip.
func (s *Store) read(ctx context.Context, ids []string) ([]session.Record, error) {
	pipe := s.client.Pipeline()
	for _, id := range ids {
		pipe.HGetAll(ctx, s.recKey(id))
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		return nil, unavailable("range", err)
	}
	out := make([]session.Record, 0, len(ids))
	for i, c := range cmds {
		m, err := c.(interface {
			Result() (map[string]string, error)
		}).Result()
		if err != nil || len(m) == 0 {
			continue
		}
		st, err := decodeMap(ids[i], m)
		if err != nil {
			continue
		}
		out = append(out, st.Record)
	}
	return out, nil
}
