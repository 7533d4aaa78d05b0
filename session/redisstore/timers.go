package redisstore

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// Due implements session.Store. One script claims the deadlines that have
// passed by now (their scores move to now + Config.ClaimTTL, so that each
// is handed to one node, and handed again if that node dies before the
// session changes) and returns the records. Each is then checked with
// Record.NextTimeout: a deadline that activity moved is re-armed in Redis
// (one more round trip for all of them), one that no longer applies is
// dropped. The sessions closing for longer than Config.ClosingGrace are
// reported as session.TimeoutOrphaned. A session's timers do not depend on
// the node that created it: whichever node runs Due first claims them.
//
// The next deadline returned is the earliest score in Redis (a claimed one
// included), and never later than now + Config.PollInterval.
func (s *Store) Due(ctx context.Context, now time.Time, buf []session.Due) ([]session.Due, time.Time, error) {
	due := buf[:0]
	limit := cap(buf)
	if limit == 0 {
		limit = 1024
	}
	nowNs := nanos(now)
	nowMs := nowNs / int64(time.Millisecond)
	s.next.Store(math.MaxInt64)
	res, err := dueScript.Run(ctx, s.client, []string{s.timers}, nowMs, limit, s.cfg.ClaimTTL.Milliseconds(), s.prefix).Slice()
	if err != nil {
		return due, time.Time{}, unavailable("due", err)
	}
	if len(res) == 0 || len(res)%2 != 1 {
		return due, time.Time{}, unavailable("due", fmt.Errorf("unexpected reply of length %d", len(res)))
	}
	var rearm []any
	claimed := (len(res) - 1) / 2
	for i := 1; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		st, err := decodeFlat(id, res[i+1])
		if err != nil {
			rearm = append(rearm, id, "*", "-1") // corrupt: never claim it again
			continue
		}
		rec := st.Record
		if rec.State == fsm.Closing {
			due = append(due, session.Due{Record: rec, Timeout: session.TimeoutOrphaned, At: now})
			continue
		}
		at, kind := rec.NextTimeout()
		switch {
		case kind == session.TimeoutNone:
			rearm = append(rearm, id, itoa(int64(rec.Epoch)), "-1")
		case nanos(at) > nowNs:
			rearm = append(rearm, id, itoa(int64(rec.Epoch)), itoa(ceilMs(nanos(at))))
		default:
			due = append(due, session.Due{Record: rec, Timeout: kind, At: at})
		}
	}
	if len(rearm) > 0 {
		args := append([]any{s.prefix}, rearm...)
		if err := rearmScript.Run(ctx, s.client, []string{s.timers}, args...).Err(); err != nil {
			// The claims expire after ClaimTTL and are found again.
			return due, now.Add(s.cfg.ClaimTTL), nil
		}
	}
	if claimed == limit {
		return due, now, nil
	}
	nextMs := nowMs + s.cfg.PollInterval.Milliseconds()
	if str, _ := res[0].(string); str != "" {
		if f, err := strconv.ParseFloat(str, 64); err == nil && int64(f) < nextMs {
			nextMs = int64(f)
		}
	}
	for i := 2; i < len(rearm); i += 3 {
		if ms, err := strconv.ParseInt(rearm[i].(string), 10, 64); err == nil && ms >= 0 {
			nextMs = min(nextMs, ms)
		}
	}
	for {
		cur := s.next.Load()
		if nextMs >= cur || s.next.CompareAndSwap(cur, nextMs) {
			break
		}
	}
	return due, time.UnixMilli(nextMs).UTC(), nil
}

// Wake implements session.Store: it receives a value when an event of any
// node announces a deadline earlier than the last one Due returned.
func (s *Store) Wake() <-chan struct{} { return s.wake }

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// announced is called with the deadline (Unix ms) an event carries.
func (s *Store) announced(ms int64) {
	if ms > 0 && ms < s.next.Load() {
		s.signal()
	}
}

// Close stops the event listener. It does not close the client, and
// leaves this node's sessions open: they belong to the service, and the
// other nodes serve them and fire their timers. Closing twice is harmless.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		if s.ps != nil {
			err = s.ps.Close()
		}
		s.wg.Wait()
	})
	return err
}
