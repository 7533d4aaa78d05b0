package redisdir_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/media/directorytest"
	"github.com/streamsession/streamsession/media/redisdir"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDirectory(t *testing.T) {
	srv := redistest.Start(t)
	n := 0
	directorytest.Run(t, func(t *testing.T) media.Directory {
		n++
		return redisdir.New(srv.Client(), redisdir.Config{Prefix: "test" + string(rune('a'+n)) + ":"})
	})
}

func TestClaimExpires(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	d := redisdir.New(srv.Client(), redisdir.Config{})
	require.NoError(t, d.Claim(ctx, media.Held{SessionID: "s1", Account: "acme", Node: "http://a:8080"}, 90*time.Second))
	ttl, err := srv.Client().PTTL(ctx, redisdir.DefaultPrefix+"holder:s1").Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, 80*time.Second)
	assert.LessOrEqual(t, ttl, 90*time.Second)
}
