package session

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

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

// TestSubscriberQueueUnderConcurrentPushes: pushes from several goroutines
// at once, while the queue grows and, with a small buffer, drops. Every
// subscriber gets each goroutine's events in the order they were pushed,
// never twice, and every event is either delivered or counted as dropped;
// with a buffer large enough for all of them, none is dropped.
func TestSubscriberQueueUnderConcurrentPushes(t *testing.T) {
	const pushers, perPusher = 4, 5000
	for _, buffer := range []int{1, 8, 64, 4096, 1 << 15} {
		t.Run(strconv.Itoa(buffer), func(t *testing.T) {
			m, _ := newTestManager(t, Config{SubscriberBuffer: buffer})
			var fast, slow eventLog
			m.Subscribe(fast.add)
			m.Subscribe(func(e Event) {
				if e.Epoch%16 == 0 {
					runtime.Gosched() // falls behind now and then
				}
				slow.add(e)
			})
			var wg sync.WaitGroup
			for g := range pushers {
				wg.Go(func() {
					id := "pusher-" + strconv.Itoa(g)
					for i := range perPusher {
						m.publish(Event{SessionID: id, Epoch: uint64(i + 1)})
					}
				})
			}
			wg.Wait()
			closeManager(t, m)

			delivered := 0
			for name, log := range map[string]*eventLog{"fast": &fast, "slow": &slow} {
				last := map[string]uint64{}
				for _, e := range log.snapshot() {
					require.Greater(t, e.Epoch, last[e.SessionID], "%s: %s out of order or twice", name, e.SessionID)
					last[e.SessionID] = e.Epoch
					delivered++
				}
				if buffer >= pushers*perPusher {
					assert.Len(t, log.snapshot(), pushers*perPusher, name)
				}
			}
			assert.Equal(t, 2*pushers*perPusher, delivered+int(m.Stats().DroppedEvents))
			if buffer >= pushers*perPusher {
				assert.Zero(t, m.Stats().DroppedEvents)
			}
		})
	}
}

// TestSubscribersUnderConcurrentLifecycles: whole lifecycles on many
// accounts at once, through the store: each subscriber sees every session's
// five events in order.
func TestSubscribersUnderConcurrentLifecycles(t *testing.T) {
	const workers, perWorker = 4, 200
	var all atomic.Int64
	m, _ := newTestManager(t, Config{Hooks: Hooks{OnTransition: func(Event) { all.Add(1) }}})
	var a, b eventLog
	m.Subscribe(a.add)
	m.Subscribe(b.add)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			acct := Account{Name: "acct-" + strconv.Itoa(w), Plan: paidPlan}
			for range perWorker {
				s, err := m.Create(ctx, acct, CreateOptions{})
				if !assert.NoError(t, err) {
					return
				}
				_, _ = m.Start(ctx, acct.Name, s.ID)
				_, _ = m.Join(ctx, acct.Name, s.ID)
				_, _ = m.Stop(ctx, acct.Name, s.ID)
			}
		})
	}
	wg.Wait()
	closeManager(t, m)
	assert.Equal(t, int64(workers*perWorker*5), all.Load())
	for _, log := range []*eventLog{&a, &b} {
		got := log.snapshot()
		require.Len(t, got, workers*perWorker*5)
		next := map[string]Event{}
		for _, e := range got {
			prev, seen := next[e.SessionID]
			if seen {
				assert.Equal(t, prev.Epoch+1, e.Epoch)
				assert.Equal(t, prev.To, e.From)
			} else {
				assert.Equal(t, Event{SessionID: e.SessionID, Account: e.Account, From: fsm.Unknown, To: fsm.New, Epoch: 1, At: e.At}, e)
			}
			next[e.SessionID] = e
		}
		for _, e := range next {
			assert.Equal(t, fsm.Closed, e.To)
		}
	}
	assert.Zero(t, m.Stats().DroppedEvents)
}

// TestEventQueueAgainstModel: the subscriber's ring, under any sequence of
// pushes and pops (growing past its first size, wrapping around), gives
// back the events in the order pushed, as a plain slice would.
func TestEventQueueAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var q eventQueue
		var model []Event
		next := uint64(1)
		t.Repeat(map[string]func(*rapid.T){
			"push": func(t *rapid.T) {
				for range rapid.IntRange(1, 100).Draw(t, "n") {
					e := Event{SessionID: "s", Epoch: next}
					next++
					q.push(e)
					model = append(model, e)
				}
			},
			"pop": func(t *rapid.T) {
				for range rapid.IntRange(1, 100).Draw(t, "n") {
					if len(model) == 0 {
						return
					}
					require.Equal(t, model[0], q.pop())
					model = model[1:]
				}
			},
			"": func(t *rapid.T) {
				require.Equal(t, len(model), q.len())
			},
		})
	})
}
