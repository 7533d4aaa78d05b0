package redisstore

import (
	"fmt"
	"strconv"
	"time"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// The fields of a record's hash. Times are Unix nanoseconds and durations
// nanoseconds, as decimal strings ("0": unset); the *m fields repeat them
// in milliseconds rounded up, for the deadline scores.
const (
	fAccount     = "a"
	fAvatar      = "v"
	fState       = "s"
	fEpoch       = "e"
	fPaid        = "p"
	fCreated     = "c"
	fStarted     = "st"
	fClosed      = "cl"
	fActivity    = "la"
	fIdle        = "it"
	fDisableIdle = "di"
	fDuration    = "dl"
	fJoin        = "jt"
	fRetention   = "rt"
	fReason      = "r"
	fOwner       = "o" // the node the session was created through
	fNonce       = "n" // the insert's nonce, to recognise a replayed insert
	fLabel       = "lb"
	fPlan        = "pl"
	// Milliseconds, rounded up.
	fJoinDeadlineMs = "jd"
	fIdleMs         = "itm"
	fDurationMs     = "dlm"
	fRetentionMs    = "rtm"
)

// ceilMs returns n nanoseconds in milliseconds, rounded up (n ≥ 0).
func ceilMs(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return (n + int64(time.Millisecond) - 1) / int64(time.Millisecond)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// insertFields returns the hash of a new record, as field/value pairs.
func insertFields(rec session.Record, owner, nonce string) []any {
	created := nanos(rec.CreatedAt)
	var jd int64
	if rec.JoinTimeout > 0 {
		jd = ceilMs(created) + ceilMs(int64(rec.JoinTimeout))
	}
	return []any{
		fAccount, rec.Account,
		fAvatar, rec.AvatarID,
		fState, itoa(int64(fsm.New)),
		fEpoch, "1",
		fPaid, bit(rec.Paid),
		fCreated, itoa(created),
		fStarted, "0",
		fClosed, "0",
		fActivity, "0",
		fIdle, itoa(int64(rec.IdleTimeout)),
		fDisableIdle, bit(rec.DisableIdleTimeout),
		fDuration, itoa(int64(rec.DurationLimit)),
		fJoin, itoa(int64(rec.JoinTimeout)),
		fRetention, itoa(int64(rec.Retention)),
		fReason, "0",
		fOwner, owner,
		fNonce, nonce,
		fLabel, rec.Label,
		fPlan, rec.PlanName,
		fJoinDeadlineMs, itoa(jd),
		fIdleMs, itoa(ceilMs(int64(rec.IdleTimeout))),
		fDurationMs, itoa(ceilMs(int64(rec.DurationLimit))),
		fRetentionMs, itoa(ceilMs(int64(rec.Retention))),
	}
}

// stored is a record as read back.
type stored struct {
	session.Record
}

// decodeFlat decodes a record from a script's flat field/value list.
func decodeFlat(id string, v any) (stored, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return stored{}, fmt.Errorf("redisstore: record %T of length %d", v, lenOf(v))
	}
	m := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, ok1 := list[i].(string)
		val, ok2 := list[i+1].(string)
		if !ok1 || !ok2 {
			return stored{}, fmt.Errorf("redisstore: record field of type %T", list[i+1])
		}
		m[k] = val
	}
	return decodeMap(id, m)
}

func lenOf(v any) int {
	if l, ok := v.([]any); ok {
		return len(l)
	}
	return -1
}

// decodeMap decodes a record from its hash.
func decodeMap(id string, m map[string]string) (stored, error) {
	var d decoder
	d.m = m
	r := session.Record{
		Info: session.Info{
			ID:                 id,
			Account:            m[fAccount],
			AvatarID:           m[fAvatar],
			State:              fsm.State(d.int(fState)),
			Epoch:              uint64(d.int(fEpoch)),
			Paid:               m[fPaid] == "1",
			CreatedAt:          fromNanos(d.int(fCreated)),
			StartedAt:          fromNanos(d.int(fStarted)),
			ClosedAt:           fromNanos(d.int(fClosed)),
			LastActivity:       fromNanos(d.int(fActivity)),
			IdleTimeout:        time.Duration(d.int(fIdle)),
			DisableIdleTimeout: m[fDisableIdle] == "1",
			DurationLimit:      time.Duration(d.int(fDuration)),
			Reason:             session.Reason(d.int(fReason)),
			Label:              m[fLabel],
			PlanName:           m[fPlan],
		},
		JoinTimeout: time.Duration(d.int(fJoin)),
		Retention:   time.Duration(d.int(fRetention)),
	}
	if d.err != nil {
		return stored{}, d.err
	}
	if _, ok := m[fAccount]; !ok || r.State < fsm.New || r.State > fsm.Closed || r.Epoch == 0 {
		return stored{}, fmt.Errorf("redisstore: corrupt record (state %d, epoch %d)", r.State, r.Epoch)
	}
	return stored{Record: r}, nil
}

type decoder struct {
	m   map[string]string
	err error
}

func (d *decoder) int(field string) int64 {
	s, ok := d.m[field]
	if !ok || s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil && d.err == nil {
		d.err = fmt.Errorf("redisstore: record field %q: %w", field, err)
	}
	return n
}

// tables holds, for each fsm.Event, the state each state leads to, as the
// digits transitionScript reads ("0" where the event is refused). It is
// computed from fsm.Next, so the scripts apply the one lifecycle
// definition.
var tables = func() map[fsm.Event]string {
	out := make(map[fsm.Event]string)
	for _, ev := range fsm.Events() {
		b := []byte("000000")
		for _, s := range fsm.States() {
			if to, err := fsm.Next(s, ev); err == nil {
				b[int(s)] = byte('0' + int(to))
			}
		}
		out[ev] = string(b)
	}
	return out
}()

// refusedTable refuses every event (an Event outside the enum).
const refusedTable = "000000"
