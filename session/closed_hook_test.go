package session

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
)

// TestOnClosed: Hooks.OnClosed receives each session's final Info once,
// whatever closed it (a stop, then the shutdown for the other session).
func TestOnClosed(t *testing.T) {
	var mu sync.Mutex
	var got []Info
	m, _ := newTestManager(t, Config{Hooks: Hooks{OnClosed: func(i Info) {
		mu.Lock()
		got = append(got, i)
		mu.Unlock()
	}}})
	ctx := context.Background()
	a, err := m.Create(ctx, acme, CreateOptions{})
	require.NoError(t, err)
	_, err = m.Start(ctx, acme.Name, a.ID)
	require.NoError(t, err)
	b, err := m.Create(ctx, acme, CreateOptions{})
	require.NoError(t, err)

	_, err = m.Stop(ctx, acme.Name, a.ID)
	require.NoError(t, err)
	_, err = m.Stop(ctx, acme.Name, a.ID)
	require.Error(t, err, "a second stop closes nothing")
	closeManager(t, m)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2)
	assert.Equal(t, a.ID, got[0].ID)
	assert.Equal(t, ReasonStop, got[0].Reason)
	assert.False(t, got[0].StartedAt.IsZero(), "started")
	assert.False(t, got[0].ClosedAt.IsZero())
	assert.Equal(t, !acme.Plan.Trial, got[0].Paid)
	assert.Equal(t, acme.Plan.Name, got[0].PlanName, "the plan, for billing")
	assert.Equal(t, acme.Plan.Name, got[1].PlanName)
	assert.Equal(t, b.ID, got[1].ID)
	assert.Equal(t, ReasonShutdown, got[1].Reason)
	assert.True(t, got[1].StartedAt.IsZero(), "never started")
}

// TestOnRefusedGetsTheAccount: Hooks.OnRefused receives the account the
// caller gave, plan included, with the refusal's code.
func TestOnRefusedGetsTheAccount(t *testing.T) {
	var got []Account
	var codes []sserrors.Code
	m, _ := newTestManager(t, Config{Hooks: Hooks{OnRefused: func(a Account, c sserrors.Code) {
		got = append(got, a)
		codes = append(codes, c)
	}}})
	defer closeManager(t, m)
	_, err := m.Create(context.Background(), acme, CreateOptions{Label: strings.Repeat("x", MaxLabelLen+1)})
	require.Error(t, err)
	assert.Equal(t, []Account{acme}, got)
	assert.Equal(t, []sserrors.Code{sserrors.CodeOf(err)}, codes)
}
