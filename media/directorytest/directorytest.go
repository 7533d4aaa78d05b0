// Package directorytest is the suite a media.Directory passes: what Claim,
// Holder and Release promise, whatever keeps the records.
package directorytest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/media"
)

// Run checks a Directory made fresh by newDir for every subtest.
func Run(t *testing.T, newDir func(t *testing.T) media.Directory) {
	ctx := context.Background()
	t.Run("unknown session has no holder", func(t *testing.T) {
		d := newDir(t)
		got, err := d.Holder(ctx, "nobody")
		require.NoError(t, err)
		assert.Equal(t, "", got)
	})
	t.Run("claim then holder", func(t *testing.T) {
		d := newDir(t)
		require.NoError(t, d.Claim(ctx, media.Held{SessionID: "s1", Account: "acme", Node: "http://a:8080"}, time.Minute))
		require.NoError(t, d.Claim(ctx, media.Held{SessionID: "s2", Account: "acme", Node: "http://b:8080"}, time.Minute))
		got, err := d.Holder(ctx, "s1")
		require.NoError(t, err)
		assert.Equal(t, "http://a:8080", got)
		got, err = d.Holder(ctx, "s2")
		require.NoError(t, err)
		assert.Equal(t, "http://b:8080", got)
	})
	t.Run("release by another node keeps the record", func(t *testing.T) {
		d := newDir(t)
		require.NoError(t, d.Claim(ctx, media.Held{SessionID: "s1", Account: "acme", Node: "http://a:8080"}, time.Minute))
		require.NoError(t, d.Release(ctx, "s1", "http://b:8080"))
		got, err := d.Holder(ctx, "s1")
		require.NoError(t, err)
		assert.Equal(t, "http://a:8080", got)
		require.NoError(t, d.Release(ctx, "s1", "http://a:8080"))
		got, err = d.Holder(ctx, "s1")
		require.NoError(t, err)
		assert.Equal(t, "", got)
		require.NoError(t, d.Release(ctx, "s1", "http://a:8080"), "releasing twice is harmless")
	})
	t.Run("orphans are the sessions of nodes not alive, taken once", func(t *testing.T) {
		d := newDir(t)
		require.NoError(t, d.Beat(ctx, "http://a:8080", time.Minute))
		require.NoError(t, d.Claim(ctx, media.Held{SessionID: "s1", Account: "acme", Node: "http://a:8080"}, time.Minute))
		require.NoError(t, d.Claim(ctx, media.Held{SessionID: "s2", Account: "acme", Node: "http://b:8080"}, time.Minute))
		require.NoError(t, d.Claim(ctx, media.Held{SessionID: "s3", Account: "globex", Node: "http://b:8080"}, time.Minute))
		require.NoError(t, d.Claim(ctx, media.Held{SessionID: "s4", Account: "globex", Node: "http://b:8080"}, time.Minute))
		require.NoError(t, d.Release(ctx, "s4", "http://b:8080"))
		got, err := d.Orphans(ctx)
		require.NoError(t, err)
		assert.ElementsMatch(t, []media.Held{
			{SessionID: "s2", Account: "acme", Node: "http://b:8080"},
			{SessionID: "s3", Account: "globex", Node: "http://b:8080"},
		}, got, "b never beat; a is alive; s4 was released")
		got, err = d.Orphans(ctx)
		require.NoError(t, err)
		assert.Empty(t, got, "taken once")
	})
}
