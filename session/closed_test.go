package session

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// TestManagerListClosed: the closed sessions of the account, newest close
// first, with the label they were created with; open sessions and other
// accounts' are not listed.
func TestManagerListClosed(t *testing.T) {
	ctx := context.Background()
	m, _ := newTestManager(t, Config{})
	defer closeManager(t, m)
	var ids []string
	for i, label := range []string{"mode=LITE", "", "mode=FULL"} {
		s, err := m.Create(ctx, acme, CreateOptions{Label: label})
		require.NoError(t, err, i)
		assert.Equal(t, label, s.Label, "Create returns the label")
		ids = append(ids, s.ID)
	}
	other, err := m.Create(ctx, Account{Name: "other", Plan: paidPlan}, CreateOptions{})
	require.NoError(t, err)
	_, err = m.Stop(ctx, "other", other.ID)
	require.NoError(t, err)
	for _, id := range []string{ids[2], ids[0]} {
		_, err := m.Stop(ctx, "acme", id)
		require.NoError(t, err)
	}

	closed, err := m.ListClosed(ctx, "acme", 0)
	require.NoError(t, err)
	var got, labels []string
	for _, s := range closed {
		got = append(got, s.ID)
		labels = append(labels, s.Label)
		assert.Equal(t, fsm.Closed, s.State)
		assert.Equal(t, ReasonStop, s.Reason)
	}
	assert.Equal(t, []string{ids[0], ids[2]}, got, "newest close first")
	assert.Equal(t, []string{"mode=LITE", "mode=FULL"}, labels)
	one, err := m.ListClosed(ctx, "acme", 1)
	require.NoError(t, err)
	require.Len(t, one, 1)
	assert.Equal(t, ids[0], one[0].ID)
	open, err := m.Get(ctx, "acme", ids[1])
	require.NoError(t, err)
	assert.Equal(t, "", open.Label)
}

// TestCreateRefusesLongLabel: a label past MaxLabelLen is 400175 and
// consumes nothing.
func TestCreateRefusesLongLabel(t *testing.T) {
	ctx := context.Background()
	m, lim := newTestManager(t, Config{})
	defer closeManager(t, m)
	_, err := m.Create(ctx, acme, CreateOptions{Label: strings.Repeat("x", MaxLabelLen+1)})
	assert.Equal(t, sserrors.CodeInvalidParameter, codeOf(err))
	assert.Equal(t, 0, lim.heldCount(), "no slot taken")
	list, err := m.List(ctx, "acme")
	require.NoError(t, err)
	assert.Empty(t, list)
	s, err := m.Create(ctx, acme, CreateOptions{Label: strings.Repeat("x", MaxLabelLen)})
	require.NoError(t, err, "MaxLabelLen bytes are accepted")
	assert.Len(t, s.Label, MaxLabelLen)
}

// plainStore is a Store that cannot list closed sessions.
type plainStore struct{ Store }

// TestListClosedNeedsClosedLister: a store without ClosedLister answers
// ErrNoClosedList.
func TestListClosedNeedsClosedLister(t *testing.T) {
	m, _ := newTestManager(t, Config{Store: plainStore{NewMemoryStore(MemoryStoreConfig{})}})
	defer closeManager(t, m)
	_, err := m.ListClosed(context.Background(), "acme", 0)
	assert.ErrorIs(t, err, ErrNoClosedList)
}

// TestMemoryStoreListClosedBounds: the list holds what the bound keeps,
// and with no bound every closed session.
func TestMemoryStoreListClosedBounds(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		max  int
		want []string
	}{
		{3, []string{"s4", "s3", "s2"}},
		{-1, []string{"s4", "s3", "s2", "s1", "s0"}},
	} {
		s := NewMemoryStore(MemoryStoreConfig{MaxClosedPerAccount: tc.max})
		require.NoError(t, s.Watch(func(Event) {}))
		for _, id := range []string{"s0", "s1", "s2", "s3", "s4"} {
			_, err := s.Insert(ctx, newRecord(id))
			require.NoError(t, err)
			closeRecord(t, s, id)
		}
		recs, err := s.ListClosed(ctx, "acme", 0)
		require.NoError(t, err)
		var got []string
		for _, r := range recs {
			got = append(got, r.ID)
		}
		assert.Equal(t, tc.want, got, "MaxClosedPerAccount %d", tc.max)
	}
}
