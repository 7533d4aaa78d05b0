package session

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
)

// blockingLimiter is a fakeLimiter whose Release waits until unblock is
// closed, so that a session can be held in closing; entered receives a
// value when a Release starts.
type blockingLimiter struct {
	*fakeLimiter
	entered chan string
	unblock chan struct{}
}

func (l *blockingLimiter) Release(ctx context.Context, lease limits.Lease) error {
	l.entered <- lease.SessionID
	<-l.unblock
	return l.fakeLimiter.Release(ctx, lease)
}

// sessionIn returns a session of "acme" driven into state s through the
// Manager. For fsm.Closing, a Stop is left blocked in Release; the returned
// function lets it finish.
func sessionIn(t *testing.T, m *Manager, lim *blockingLimiter, s fsm.State) (id string, finish func()) {
	t.Helper()
	ctx := context.Background()
	info, err := m.Create(ctx, acme, CreateOptions{})
	require.NoError(t, err)
	id, finish = info.ID, func() {}
	if s >= fsm.Connecting && s <= fsm.Connected {
		_, err = m.Start(ctx, "acme", id)
		require.NoError(t, err)
	}
	if s == fsm.Connected {
		_, err = m.Join(ctx, "acme", id)
		require.NoError(t, err)
	}
	switch s {
	case fsm.Closing:
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, err := m.Stop(ctx, "acme", id)
			assert.NoError(t, err)
		}()
		assert.Equal(t, id, <-lim.entered)
		finish = func() {
			go func() { lim.unblock <- struct{}{} }()
			<-done
		}
	case fsm.Closed:
		go func() { <-lim.entered; lim.unblock <- struct{}{} }()
		_, err = m.Stop(ctx, "acme", id)
		require.NoError(t, err)
	}
	got, err := m.Get(ctx, "acme", id)
	require.NoError(t, err)
	require.Equal(t, s, got.State)
	return id, finish
}

// TestCommandPolicyExhaustive walks every (command, state) pair through the
// Manager and asserts the exact answer: nil where the policy of docs/wire.md
// allows the command, else the code of the state the session is in.
func TestCommandPolicyExhaustive(t *testing.T) {
	stateCode := map[fsm.State]sserrors.Code{
		fsm.New:        10001,
		fsm.Connecting: 10002,
		fsm.Connected:  10003,
		fsm.Closing:    10004,
		fsm.Closed:     10005,
	}
	allowed := map[fsm.Command][]fsm.State{
		fsm.CmdStart:          {fsm.New},
		fsm.CmdICE:            {fsm.New, fsm.Connecting},
		fsm.CmdTask:           {fsm.Connected},
		fsm.CmdInterrupt:      {fsm.Connected},
		fsm.CmdKeepAlive:      {fsm.Connected},
		fsm.CmdStartListening: {fsm.Connected},
		fsm.CmdStopListening:  {fsm.Connected},
		fsm.CmdStop:           {fsm.New, fsm.Connecting, fsm.Connected},
	}
	// After a successful command the session is in:
	after := map[fsm.Command]fsm.State{fsm.CmdStart: fsm.Connecting, fsm.CmdStop: fsm.Closed}

	lim := &blockingLimiter{fakeLimiter: newFakeLimiter(1000), entered: make(chan string, 1), unblock: make(chan struct{})}
	m, _ := newTestManager(t, Config{Limiter: lim})
	defer func() {
		go func() {
			for range lim.entered {
			}
		}()
		close(lim.unblock)
		closeManager(t, m)
		close(lim.entered)
	}()
	ctx := context.Background()

	for _, state := range []fsm.State{fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed} {
		for _, cmd := range fsm.Commands() {
			t.Run(cmd.String()+"/"+state.String(), func(t *testing.T) {
				id, finish := sessionIn(t, m, lim, state)
				defer finish()
				ok := false
				for _, s := range allowed[cmd] {
					ok = ok || s == state
				}
				if cmd == fsm.CmdStop && ok {
					go func() { <-lim.entered; lim.unblock <- struct{}{} }()
				}
				info, err := m.Command(ctx, "acme", id, cmd)
				got, gerr := m.Get(ctx, "acme", id)
				require.NoError(t, gerr)
				if !ok {
					require.Error(t, err)
					assert.Equal(t, stateCode[state], codeOf(err))
					e, _ := sserrors.As(err)
					assert.Equal(t, 400, e.Status)
					assert.Equal(t, state, got.State, "a refused command changes nothing")
					return
				}
				require.NoError(t, err)
				want := state
				if s, moves := after[cmd]; moves {
					want = s
				}
				assert.Equal(t, want, info.State)
				assert.Equal(t, want, got.State)
			})
		}
		t.Run("join/"+state.String(), func(t *testing.T) {
			id, finish := sessionIn(t, m, lim, state)
			defer finish()
			_, err := m.Join(ctx, "acme", id)
			if state == fsm.Connecting || state == fsm.Connected {
				assert.NoError(t, err)
			} else {
				assert.Equal(t, stateCode[state], codeOf(err))
			}
		})
		t.Run("touch/"+state.String(), func(t *testing.T) {
			id, finish := sessionIn(t, m, lim, state)
			defer finish()
			err := m.Touch(ctx, "acme", id)
			if state == fsm.Connected {
				assert.NoError(t, err)
			} else {
				assert.Equal(t, stateCode[state], codeOf(err))
			}
		})
	}
}
