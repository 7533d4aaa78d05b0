package redisurl_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/service/redisurl"
)

// TestAgainstServer dials a real redis-server that asks for a password and
// has an ACL user, through every way a password can reach the client, and
// over TLS with a private CA.
func TestAgainstServer(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := srv.Client()
	const defaultPW, alicePW = "default-pw-1", "alice pw/@:2"
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "alice", "on", ">"+alicePW, "~*", "+@all").Err())
	require.NoError(t, admin.ConfigSet(ctx, "requirepass", defaultPW).Err())

	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte(alicePW+"\n"), 0o600))
	t.Setenv("REDISURL_TEST_DEFAULT_PW", defaultPW)

	tests := []struct {
		name   string
		url    string
		opt    redisurl.Options
		whoami string
		db     int
	}{
		{"default user in URL, db 2", "redis://:" + defaultPW + "@" + srv.Addr() + "/2", redisurl.Options{}, "default", 2},
		{"ACL user in URL, escaped", "redis://alice:alice%20pw%2F%40%3A2@" + srv.Addr(), redisurl.Options{}, "alice", 0},
		{"ACL user, password file", "redis://alice@" + srv.Addr() + "/1", redisurl.Options{PasswordFile: pwFile}, "alice", 1},
		{"default user, password variable", srv.Addr(), redisurl.Options{PasswordEnv: "REDISURL_TEST_DEFAULT_PW"}, "default", 0},
		{"TLS with private CA", "rediss://alice@" + srv.TLSAddr() + "/3", redisurl.Options{PasswordFile: pwFile, CAFile: srv.CAFile()}, "alice", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redisurl.New(tt.url, tt.opt)
			require.NoError(t, err)
			defer c.Close()
			who, err := c.Do(ctx, "ACL", "WHOAMI").Text()
			require.NoError(t, err)
			assert.Equal(t, tt.whoami, who)
			key := "redisurl-test:" + tt.name
			require.NoError(t, c.Set(ctx, key, tt.name, 0).Err())
			// The value is in the database the URL named, seen by a
			// client of its own.
			check := srv.NewClient(&redis.Options{Password: defaultPW, DB: tt.db})
			got, err := check.Get(ctx, key).Result()
			require.NoError(t, err)
			assert.Equal(t, tt.name, got)
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		c, err := redisurl.New("redis://alice:wrong-pw-3@"+srv.Addr(), redisurl.Options{})
		require.NoError(t, err)
		defer c.Close()
		err = c.Ping(ctx).Err()
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "wrong-pw-3")
	})
	t.Run("TLS without the CA", func(t *testing.T) {
		c, err := redisurl.New("rediss://alice@"+srv.TLSAddr(), redisurl.Options{PasswordFile: pwFile})
		require.NoError(t, err)
		defer c.Close()
		err = c.Ping(ctx).Err()
		require.Error(t, err)
		assert.True(t, strings.Contains(err.Error(), "certificate"), "Ping over TLS without the CA: %v, want a certificate error", err)
	})
}
