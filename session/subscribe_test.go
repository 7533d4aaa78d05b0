package session

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
)

func TestSubscribersSeeEveryTransitionInOrder(t *testing.T) {
	ctx := context.Background()
	m, _ := newTestManager(t, Config{})
	var a, b eventLog
	cancelA := m.Subscribe(a.add)
	defer cancelA()
	m.Subscribe(b.add)
	var ids []string
	for range 50 {
		s, err := m.Create(ctx, acme, CreateOptions{})
		require.NoError(t, err)
		ids = append(ids, s.ID)
		_, _ = m.Start(ctx, "acme", s.ID)
		_, _ = m.Join(ctx, "acme", s.ID)
		_, _ = m.Stop(ctx, "acme", s.ID)
	}
	closeManager(t, m)
	assert.Equal(t, a.snapshot(), b.snapshot())
	assert.Len(t, a.snapshot(), 50*5)
	for _, id := range ids {
		evs := a.of(id)
		require.Len(t, evs, 5)
		from := fsm.Unknown
		for i, e := range evs {
			assert.Equal(t, uint64(i+1), e.Epoch)
			assert.Equal(t, from, e.From)
			from = e.To
		}
	}
	assert.Equal(t, Stats{}, m.Stats())
}

// TestSlowSubscriber: a subscriber that stops reading never blocks a
// transition; past SubscriberBuffer undelivered events the oldest are
// dropped and counted, and the subscriber then gets the newest ones in
// order.
func TestSlowSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var all eventLog // every event, synchronously
		m, _ := newTestManager(t, Config{SubscriberBuffer: 8, Hooks: Hooks{OnTransition: all.add}})
		entered := make(chan Event, 1)
		release := make(chan struct{})
		var log eventLog
		first := true
		m.Subscribe(func(e Event) {
			if first {
				first = false
				entered <- e
				<-release // stuck until the test says so
			}
			log.add(e)
		})

		s, err := m.Create(ctx, acme, CreateOptions{}) // event 1: the subscriber blocks on it
		require.NoError(t, err)
		assert.Equal(t, uint64(1), (<-entered).Epoch)
		var ids []string
		for range 4 { // 4 sessions × 5 events, none waiting for the stuck subscriber
			x, err := m.Create(ctx, acme, CreateOptions{})
			require.NoError(t, err)
			ids = append(ids, x.ID)
			_, _ = m.Start(ctx, "acme", x.ID)
			_, _ = m.Join(ctx, "acme", x.ID)
			_, err = m.Stop(ctx, "acme", x.ID)
			require.NoError(t, err)
		}
		synctest.Wait()
		assert.Equal(t, uint64(20-8), m.Stats().DroppedEvents, "20 queued behind the stuck one, 8 kept")
		assert.Len(t, all.snapshot(), 21)
		close(release)
		synctest.Wait()
		got := log.snapshot()
		require.Len(t, got, 1+8)
		assert.Equal(t, s.ID, got[0].SessionID)
		assert.Equal(t, all.snapshot()[21-8:], got[1:], "the newest 8, in order")
		closeManager(t, m)
	})
}

func TestSubscriberQueueGrows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m, _ := newTestManager(t, Config{})
		release := make(chan struct{})
		var log eventLog
		m.Subscribe(func(e Event) { <-release; log.add(e) })
		for range 100 { // 500 events, past the initial ring of 64
			x, _ := m.Create(ctx, acme, CreateOptions{})
			_, _ = m.Stop(ctx, "acme", x.ID)
		}
		close(release)
		closeManager(t, m)
		assert.Len(t, log.snapshot(), 300)
		assert.Zero(t, m.Stats().DroppedEvents)
	})
}

func TestCancelSubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m, _ := newTestManager(t, Config{})
		defer closeManager(t, m)
		var log eventLog
		cancel := m.Subscribe(log.add)
		assert.Equal(t, 1, m.Stats().Subscribers)
		s, _ := m.Create(ctx, acme, CreateOptions{})
		synctest.Wait()
		cancel()
		cancel() // idempotent
		assert.Equal(t, 0, m.Stats().Subscribers)
		_, _ = m.Start(ctx, "acme", s.ID)
		synctest.Wait()
		assert.Len(t, log.snapshot(), 1, "nothing after cancel")

		// cancel from inside the callback.
		var own func()
		var n int
		own = m.Subscribe(func(e Event) { n++; own() })
		_, _ = m.Join(ctx, "acme", s.ID)
		_, _ = m.Stop(ctx, "acme", s.ID)
		synctest.Wait()
		assert.Equal(t, 1, n)
		assert.Equal(t, 0, m.Stats().Subscribers)
	})
}

func TestSubscribeAfterClose(t *testing.T) {
	m, _ := newTestManager(t, Config{})
	closeManager(t, m)
	called := false
	cancel := m.Subscribe(func(Event) { called = true })
	cancel()
	_, err := m.Create(context.Background(), acme, CreateOptions{})
	assert.ErrorIs(t, err, ErrManagerClosed)
	assert.False(t, called)
}
