package session

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

func TestCloseClosesEverySession(t *testing.T) {
	ctx := context.Background()
	m, lim := newTestManager(t, Config{})
	var log eventLog
	m.Subscribe(log.add)
	byState := map[fsm.State][]string{}
	for i := range 30 {
		s, err := m.Create(ctx, Account{Name: []string{"a", "b", "c"}[i%3], Plan: paidPlan}, CreateOptions{})
		require.NoError(t, err)
		state := []fsm.State{fsm.New, fsm.Connecting, fsm.Connected, fsm.Closed}[i%4]
		if state >= fsm.Connecting {
			_, _ = m.Start(ctx, s.Account, s.ID)
		}
		if state >= fsm.Connected {
			_, _ = m.Join(ctx, s.Account, s.ID)
		}
		if state == fsm.Closed {
			_, _ = m.Stop(ctx, s.Account, s.ID)
		}
		byState[state] = append(byState[state], s.Account+"/"+s.ID)
	}
	require.NoError(t, m.Close(ctx))
	require.NoError(t, m.Close(ctx), "idempotent")
	assert.Equal(t, 0, lim.heldCount(), "every slot is free")
	for state, keys := range byState {
		for _, key := range keys {
			acct, id := key[:1], key[2:]
			assert.Equal(t, 1, lim.releaseCount(id), "released once")
			got, err := m.Get(ctx, acct, id)
			require.NoError(t, err)
			assert.Equal(t, fsm.Closed, got.State)
			evs := log.of(id)
			if state == fsm.Closed {
				assert.Equal(t, ReasonStop, got.Reason)
				continue
			}
			assert.Equal(t, ReasonShutdown, got.Reason)
			require.GreaterOrEqual(t, len(evs), 3)
			assert.Equal(t, Event{SessionID: id, Account: acct, From: state, To: fsm.Closing, Epoch: evs[len(evs)-2].Epoch, At: evs[len(evs)-2].At, Reason: ReasonShutdown}, evs[len(evs)-2])
			assert.Equal(t, fsm.Closed, evs[len(evs)-1].To, "subscribers see closed before Close returns")
		}
	}
	for _, call := range []func() error{
		func() error { _, err := m.Create(ctx, acme, CreateOptions{}); return err },
		func() error { _, err := m.Start(ctx, "a", "x"); return err },
		func() error { _, err := m.Join(ctx, "a", "x"); return err },
		func() error { _, err := m.Stop(ctx, "a", "x"); return err },
	} {
		err := call()
		assert.ErrorIs(t, err, ErrManagerClosed)
		assert.Equal(t, 503, sserrors.StatusOf(err))
	}
	list, err := m.List(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, list)
}

func TestCloseWaitsForCallsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		lim := &blockingLimiter{fakeLimiter: newFakeLimiter(10), entered: make(chan string, 1), unblock: make(chan struct{})}
		m, _ := newTestManager(t, Config{Limiter: lim})
		s, _ := m.Create(ctx, acme, CreateOptions{})
		other, _ := m.Create(ctx, acme, CreateOptions{})
		stopped := make(chan error, 1)
		go func() { _, err := m.Stop(ctx, "acme", s.ID); stopped <- err }()
		<-lim.entered // the Stop is releasing

		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		assert.ErrorIs(t, m.Close(short), context.DeadlineExceeded, "Close waits for the Stop in flight")
		got, _ := m.Get(ctx, "acme", other.ID)
		assert.Equal(t, fsm.New, got.State, "nothing is closed before the calls in flight end")

		go func() {
			for range lim.entered {
				lim.unblock <- struct{}{}
			}
		}()
		lim.unblock <- struct{}{}
		require.NoError(t, <-stopped)
		require.NoError(t, m.Close(ctx))
		close(lim.entered)
		got, _ = m.Get(ctx, "acme", other.ID)
		assert.Equal(t, ReasonShutdown, got.Reason)
		assert.Equal(t, 0, lim.heldCount())
	})
}

func TestCloseRacingCreates(t *testing.T) {
	ctx := context.Background()
	m, lim := newTestManager(t, Config{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range 8 {
		wg.Go(func() {
			for range 50 {
				_, err := m.Create(ctx, acme, CreateOptions{})
				if err == nil {
					mu.Lock()
					created++
					mu.Unlock()
				} else {
					assert.ErrorIs(t, err, ErrManagerClosed)
				}
			}
		})
	}
	require.NoError(t, m.Close(ctx))
	wg.Wait()
	assert.Equal(t, 0, lim.heldCount(), "no create slips past Close with a slot")
	lim.mu.Lock()
	assert.Equal(t, created, len(lim.releases))
	lim.mu.Unlock()
}
