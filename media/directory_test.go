package media_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/media/directorytest"
)

func TestMemoryDirectory(t *testing.T) {
	directorytest.Run(t, func(*testing.T) media.Directory { return &media.MemoryDirectory{} })
}

func TestMemoryDirectoryExpires(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := &media.MemoryDirectory{Now: func() time.Time { return now }}
	ctx := context.Background()
	require.NoError(t, d.Claim(ctx, media.Held{SessionID: "s1", Account: "acme", Node: "http://a"}, time.Minute))
	now = now.Add(time.Minute - time.Nanosecond)
	got, _ := d.Holder(ctx, "s1")
	assert.Equal(t, "http://a", got)
	now = now.Add(time.Nanosecond)
	got, _ = d.Holder(ctx, "s1")
	assert.Equal(t, "", got, "expired at its ttl")
}
