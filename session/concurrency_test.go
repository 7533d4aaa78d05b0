package session

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// TestThousandStoppers: 1,000 goroutines stop one session at once: exactly
// one succeeds, the others answer 10004 or 10005, the slot is released
// once, and subscribers see one closed.
func TestThousandStoppers(t *testing.T) {
	ctx := context.Background()
	m, lim := newTestManager(t, Config{})
	var log eventLog
	m.Subscribe(log.add)
	s, err := m.Create(ctx, acme, CreateOptions{})
	require.NoError(t, err)
	_, _ = m.Start(ctx, "acme", s.ID)
	_, _ = m.Join(ctx, "acme", s.ID)

	const n = 1000
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = m.Stop(ctx, "acme", s.ID)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch codeOf(err) {
		case 0:
			ok++
		case sserrors.CodeSessionStateClosing, sserrors.CodeSessionStateClosed:
		default:
			t.Errorf("Stop = %v, want nil, 10004 or 10005", err)
		}
	}
	assert.Equal(t, 1, ok)
	assert.Equal(t, 1, lim.releaseCount(s.ID))
	closeManager(t, m)
	closed := 0
	for _, e := range log.of(s.ID) {
		if e.To == fsm.Closed {
			closed++
			assert.Equal(t, ReasonStop, e.Reason)
		}
	}
	assert.Equal(t, 1, closed)
}

// TestConcurrentCommandsOnOneSession races every call on one session from
// many goroutines; the session still goes through each state once, in
// order, and its slot is released once.
func TestConcurrentCommandsOnOneSession(t *testing.T) {
	ctx := context.Background()
	m, lim := newTestManager(t, Config{})
	var log eventLog
	m.Subscribe(log.add)
	s, err := m.Create(ctx, acme, CreateOptions{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				switch (g + i) % 6 {
				case 0:
					_, _ = m.Start(ctx, "acme", s.ID)
				case 1:
					_, _ = m.Join(ctx, "acme", s.ID)
				case 2:
					_ = m.Touch(ctx, "acme", s.ID)
				case 3:
					_, _ = m.Command(ctx, "acme", s.ID, fsm.Command(1+i%8))
				case 4:
					_, _ = m.Get(ctx, "acme", s.ID)
				case 5:
					if i > 150 {
						_, _ = m.Stop(ctx, "acme", s.ID)
					}
				}
			}
		})
	}
	wg.Wait()
	_, _ = m.Stop(ctx, "acme", s.ID)
	closeManager(t, m)
	evs := log.of(s.ID)
	from := fsm.Unknown
	for i, e := range evs {
		assert.Equal(t, uint64(i+1), e.Epoch)
		assert.Equal(t, from, e.From)
		assert.Greater(t, e.To, e.From, "states only move forward")
		from = e.To
	}
	assert.Equal(t, fsm.Closed, from)
	assert.Equal(t, 1, lim.releaseCount(s.ID))
}
