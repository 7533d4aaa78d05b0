package session

import (
	"context"
	"errors"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// ClosedLister is a Store that can list an account's closed sessions still
// kept for their retention window (at most MemoryStoreConfig's
// MaxClosedPerAccount of them, or the Redis store's bound). MemoryStore
// and the Redis store implement it; implementations are safe for
// concurrent use by multiple goroutines, as every Store is.
type ClosedLister interface {
	// ListClosed returns account's closed sessions, newest close first
	// (sessions closed at the same instant in the order they closed), at
	// most limit of them when limit > 0. A session forgotten (its
	// retention ended, or the bound pushed it out) is not listed. The
	// slice is the caller's.
	ListClosed(ctx context.Context, account string, limit int) ([]Record, error)
}

// MaxLabelLen bounds CreateOptions.Label, in bytes.
const MaxLabelLen = 256

var errLabel = sserrors.ErrInvalidParameter.WithCause(errors.New("session: label longer than MaxLabelLen"))

// ErrNoClosedList is returned by Manager.ListClosed when the Manager's
// Store does not implement ClosedLister.
var ErrNoClosedList = errors.New("session: the store keeps no list of closed sessions")

// ListClosed returns account's closed sessions still kept, newest close
// first, at most limit of them when limit > 0 (see ClosedLister). It fails
// with ErrNoClosedList when the Manager's Store cannot list them.
func (m *Manager) ListClosed(ctx context.Context, account string, limit int) ([]Info, error) {
	l, ok := m.store.(ClosedLister)
	if !ok {
		return nil, ErrNoClosedList
	}
	recs, err := l.ListClosed(ctx, account, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Info, len(recs))
	for i, r := range recs {
		out[i] = r.Info
	}
	return out, nil
}

// ListClosed implements ClosedLister: the account's kept closed sessions,
// newest first. With no bound (MaxClosedPerAccount negative) every closed
// session is kept in the list until its retention ends.
func (s *MemoryStore) ListClosed(ctx context.Context, account string, limit int) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	as := s.shard(account)
	as.mu.Lock()
	var listed []*memRecord
	if l := as.closed[account]; l != nil {
		for r := l.newest; r != nil && (limit <= 0 || len(listed) < limit); r = r.older {
			listed = append(listed, r)
		}
	}
	as.mu.Unlock()
	out := make([]Record, 0, len(listed))
	for _, r := range listed {
		sh := s.shard(r.id)
		sh.mu.Lock()
		gone, rec := r.gone.Load(), r.record()
		sh.mu.Unlock()
		if !gone && rec.State == fsm.Closed {
			out = append(out, rec)
		}
	}
	return out, nil
}
