package redistokens

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/redistest"
)

// TestSecretKeeperAfterDataLoss: after Redis lost its data, a node that
// lived through it writes its secret back and the nodes started afterwards
// adopt it; when a new node got there first, the old nodes cannot adopt
// its secret and say so, until Redis holds theirs again.
func TestSecretKeeperAfterDataLoss(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.Client()
	a, err := KeepSecret(ctx, srv.Client(), "")
	require.NoError(t, err)
	b, err := KeepSecret(ctx, srv.Client(), "")
	require.NoError(t, err)
	require.Equal(t, a.Secret(), b.Secret())

	// Nothing lost: nothing to do.
	restored, err := a.Check(ctx)
	require.NoError(t, err)
	assert.False(t, restored)

	// Lost; a looks first and writes its secret back; b and a node
	// started afterwards agree with it.
	require.NoError(t, admin.FlushAll(ctx).Err())
	restored, err = a.Check(ctx)
	require.NoError(t, err)
	assert.True(t, restored)
	restored, err = b.Check(ctx)
	require.NoError(t, err)
	assert.False(t, restored)
	assert.NoError(t, b.Err())
	c, err := KeepSecret(ctx, srv.Client(), "")
	require.NoError(t, err)
	assert.Equal(t, a.Secret(), c.Secret())

	// Lost again, and a new node starts before the old ones look: it makes
	// a secret of its own, which they cannot adopt.
	require.NoError(t, admin.FlushAll(ctx).Err())
	d, err := KeepSecret(ctx, srv.Client(), "")
	require.NoError(t, err)
	assert.NotEqual(t, a.Secret(), d.Secret())
	for _, k := range []*SecretKeeper{a, b, c} {
		restored, err := k.Check(ctx)
		require.NoError(t, err)
		assert.False(t, restored)
		assert.ErrorIs(t, k.Err(), ErrSecretChanged)
		assert.NotContains(t, k.Err().Error(), string(k.Secret()))
	}
	restored, err = d.Check(ctx)
	require.NoError(t, err)
	assert.False(t, restored)
	assert.NoError(t, d.Err())

	// A Redis that does not answer leaves Err as it was.
	srv.Kill()
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = a.Check(cctx)
	assert.ErrorIs(t, err, sserrors.ErrBackendUnavailable)
	assert.ErrorIs(t, a.Err(), ErrSecretChanged)
}

// TestSecretKeeperRun: Run writes the secret back within a few intervals
// of the loss and reports it once.
func TestSecretKeeperRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv := redistest.Start(t)
	k, err := KeepSecret(ctx, srv.Client(), "run")
	require.NoError(t, err)
	var (
		mu      sync.Mutex
		reports []bool
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.Run(ctx, 20*time.Millisecond, func(restored bool, err error) {
			assert.NoError(t, err)
			mu.Lock()
			reports = append(reports, restored)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	require.NoError(t, srv.Client().FlushAll(ctx).Err())
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := srv.Client().Get(ctx, "{run}:secret").Result()
		if err == nil {
			assert.Equal(t, k.hex, got)
			break
		}
		require.True(t, time.Now().Before(deadline), "the secret not written back within 5s")
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []bool{true}, reports)
}
