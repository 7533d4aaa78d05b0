package session

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streamsession/streamsession/limits"
)

// insertFailingStore is a MemoryStore whose Insert fails: with its own
// error, or (hang) only when the caller's context is done, like a backend
// that does not answer.
type insertFailingStore struct {
	*MemoryStore
	hang bool
}

var errInsertRefused = errors.New("test: insert refused")

func (s insertFailingStore) Insert(ctx context.Context, rec Record) (Record, error) {
	if s.hang {
		<-ctx.Done()
		return Record{}, ctx.Err()
	}
	return Record{}, errInsertRefused
}

// gatedReleaseLimiter is a fakeLimiter whose Release waits for gate, like a
// backend that has stopped answering.
type gatedReleaseLimiter struct {
	*fakeLimiter
	gate chan struct{}
}

func (l gatedReleaseLimiter) Release(ctx context.Context, lease limits.Lease) error {
	select {
	case <-l.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return l.fakeLimiter.Release(ctx, lease)
}

// failingReleaseLimiter is a fakeLimiter whose Release fails until up is
// closed, like a backend in the middle of a failover.
type failingReleaseLimiter struct {
	*fakeLimiter
	up chan struct{}
}

var errReleaseDown = errors.New("test: limiter down")

func (l failingReleaseLimiter) Release(ctx context.Context, lease limits.Lease) error {
	select {
	case <-l.up:
		return l.fakeLimiter.Release(ctx, lease)
	default:
		return errReleaseDown
	}
}

// lostReplyLimiter is a fakeLimiter whose Acquire grants the slot and then
// fails, like a limiter whose answer a failover cut after the write.
type lostReplyLimiter struct{ *fakeLimiter }

func (l lostReplyLimiter) Acquire(ctx context.Context, req limits.Request) (limits.Decision, error) {
	if _, err := l.fakeLimiter.Acquire(ctx, req); err != nil {
		return limits.Decision{}, err
	}
	return limits.Decision{}, limits.ErrUnavailable.WithCause(errors.New("test: the reply was lost"))
}

// A Create whose acquire failed after the limiter granted the slot gives
// the slot back: the account does not wait for the lease to expire.
func TestCreateReleasesSlotWhenAcquireReplyLost(t *testing.T) {
	lim := lostReplyLimiter{newFakeLimiter(10)}
	m, _ := newTestManager(t, Config{Limiter: lim})
	if _, err := m.Create(context.Background(), acme, CreateOptions{}); !errors.Is(err, limits.ErrUnavailable) {
		t.Fatalf("Create = %v, want the limiter's 503", err)
	}
	closeManager(t, m) // waits for the background release
	if got := lim.heldCount(); got != 0 {
		t.Fatalf("slots held after an acquire whose reply was lost = %d, want 0", got)
	}
}

// A Create whose session cannot be stored gives its slot back, and returns
// by the caller's deadline even when the limiter is as slow as the store.
func TestCreateReleasesSlotWhenInsertFails(t *testing.T) {
	t.Run("store refuses", func(t *testing.T) {
		lim := newFakeLimiter(10)
		m, _ := newTestManager(t, Config{Limiter: lim, Store: insertFailingStore{MemoryStore: NewMemoryStore(MemoryStoreConfig{})}})
		defer closeManager(t, m)
		_, err := m.Create(context.Background(), acme, CreateOptions{})
		if !errors.Is(err, errInsertRefused) {
			t.Fatalf("Create = %v, want the store's error", err)
		}
		if got := lim.heldCount(); got != 0 {
			t.Fatalf("slots held after the failed Create = %d, want 0", got)
		}
	})
	t.Run("backend hangs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := gatedReleaseLimiter{fakeLimiter: newFakeLimiter(10), gate: make(chan struct{})}
			m, _ := newTestManager(t, Config{Limiter: lim, Store: insertFailingStore{MemoryStore: NewMemoryStore(MemoryStoreConfig{}), hang: true}})
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := m.Create(ctx, acme, CreateOptions{})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Create = %v, want the deadline", err)
			}
			if took := time.Since(start); took != 500*time.Millisecond {
				t.Fatalf("Create returned after %v, want exactly its deadline (500ms)", took)
			}
			if got := lim.heldCount(); got != 1 {
				t.Fatalf("slots held while the release waits = %d, want 1", got)
			}
			close(lim.gate) // the backend answers again
			synctest.Wait()
			if got := lim.heldCount(); got != 0 {
				t.Fatalf("slots held after the backend answered = %d, want 0", got)
			}
			closeManager(t, m)
		})
	})
	t.Run("release fails, then the backend answers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := failingReleaseLimiter{fakeLimiter: newFakeLimiter(10), up: make(chan struct{})}
			m, _ := newTestManager(t, Config{Limiter: lim, Store: insertFailingStore{MemoryStore: NewMemoryStore(MemoryStoreConfig{})}})
			if _, err := m.Create(context.Background(), acme, CreateOptions{}); !errors.Is(err, errInsertRefused) {
				t.Fatalf("Create = %v, want the store's error", err)
			}
			time.Sleep(time.Second)
			if got := lim.heldCount(); got != 1 {
				t.Fatalf("slots held while the limiter is down = %d, want 1", got)
			}
			close(lim.up) // the failover is over
			time.Sleep(250 * time.Millisecond)
			synctest.Wait()
			if got := lim.heldCount(); got != 0 {
				t.Fatalf("slots held once the limiter answers again = %d, want 0 (the failed Create's slot leaked)", got)
			}
			closeManager(t, m)
		})
	})
}
