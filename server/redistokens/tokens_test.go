package redistokens

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var acct = session.Account{Name: "acme", Plan: limits.TrialPlan}

// TestTokensAcrossNodes is the in-memory store's test (server's
// TestMemoryTokens) with every step taken through one of two nodes.
func TestTokensAcrossNodes(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a, err := New(srv.Client(), Config{})
	require.NoError(t, err)
	b, err := New(srv.Client(), Config{})
	require.NoError(t, err)

	token, err := a.Mint(ctx, acct)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(token, "sst_"))
	other, err := b.Mint(ctx, acct)
	require.NoError(t, err)
	assert.NotEqual(t, token, other)

	got, err := b.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, server.Token{Account: acct}, got, "minted on a, known on b, plan included")
	_, err = a.Get(ctx, "sst_nope")
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
	_, err = a.Get(ctx, "")
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)

	claimed, err := a.Claim(ctx, token)
	require.NoError(t, err)
	assert.True(t, claimed.Claimed)
	_, err = b.Claim(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "claimed twice")
	require.NoError(t, b.Unclaim(ctx, token))
	assert.ErrorIs(t, a.Unclaim(ctx, token), sserrors.ErrUnauthorized, "not claimed")
	assert.ErrorIs(t, a.Bind(ctx, token, "s1"), sserrors.ErrUnauthorized, "bind needs a claim")
	_, err = b.Claim(ctx, token)
	require.NoError(t, err)
	require.NoError(t, a.Bind(ctx, token, "s1"))
	assert.ErrorIs(t, b.Bind(ctx, token, "s2"), sserrors.ErrUnauthorized, "bound once")
	_, err = a.Claim(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "spent")
	got, err = b.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, server.Token{Account: acct, SessionID: "s1"}, got)

	require.NoError(t, a.Revoke(ctx, "sst_never"))
	require.NoError(t, b.Revoke(ctx, token))
	_, err = a.Get(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)

	keys, err := srv.Client().Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1, "the other token")
	assert.NotContains(t, keys[0], strings.TrimPrefix(other, "sst_"), "Redis holds a hash of the token, not the token")
}

func TestTokensExpire(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	const ttl = 400 * time.Millisecond
	s, err := New(srv.Client(), Config{TTL: ttl, ClaimTTL: 50 * time.Millisecond})
	require.NoError(t, err)
	used, err := s.Mint(ctx, acct)
	require.NoError(t, err)
	unused, err := s.Mint(ctx, acct)
	require.NoError(t, err)
	// Every use restarts the TTL (Redis's PEXPIRE).
	pttl := func(token string) time.Duration {
		d, err := srv.Client().PTTL(ctx, s.key(token)).Result()
		require.NoError(t, err)
		return d
	}
	assert.InDelta(t, float64(ttl), float64(pttl(used)), float64(50*time.Millisecond))
	time.Sleep(ttl / 2)
	_, err = s.Get(ctx, used)
	require.NoError(t, err)
	assert.Greater(t, pttl(used), pttl(unused), "the use restarted the TTL")
	// (Asking with Get would be a use: watch the key instead.)
	require.Eventually(t, func() bool {
		return srv.Client().Exists(ctx, s.key(unused)).Val() == 0
	}, 5*time.Second, 10*time.Millisecond, "unused tokens expire")
	_, err = s.Get(ctx, unused)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)

	// A claim lapses: its streaming.new died with its node.
	_, err = s.Claim(ctx, used)
	require.NoError(t, err)
	_, err = s.Claim(ctx, used)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
	require.Eventually(t, func() bool {
		_, err := s.Claim(ctx, used)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond, "claimable again after ClaimTTL")
}

func TestOneClaimAcrossNodes(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	var nodes []*Store
	for range 4 {
		s, err := New(srv.Client(), Config{})
		require.NoError(t, err)
		nodes = append(nodes, s)
	}
	token, err := nodes[0].Mint(ctx, acct)
	require.NoError(t, err)
	assert.Equal(t, int32(1), concurrentClaims(nodes, token), "one claim wins")
}

// concurrentClaims makes 64 concurrent claims of token spread over nodes and
// returns how many won.
func concurrentClaims(nodes []*Store, token string) int32 {
	ctx := context.Background()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if _, err := nodes[i%len(nodes)].Claim(ctx, token); err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	return wins.Load()
}

func TestSharedSecret(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	first, err := SharedSecret(ctx, srv.Client(), "")
	require.NoError(t, err)
	assert.Len(t, first, 32)
	again, err := SharedSecret(ctx, srv.Client(), DefaultPrefix)
	require.NoError(t, err)
	assert.Equal(t, first, again, "every node agrees")
	other, err := SharedSecret(ctx, srv.Client(), "other")
	require.NoError(t, err)
	assert.NotEqual(t, first, other, "another prefix, another service")
	_, err = SharedSecret(ctx, srv.Client(), "{bad}")
	assert.Equal(t, sserrors.CodeInvalidParameter, sserrors.CodeOf(err))
}

func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.NewClient(&redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1})
	s, err := New(client, Config{})
	require.NoError(t, err)
	token, err := s.Mint(context.Background(), acct)
	require.NoError(t, err)
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	for name, call := range map[string]func() error{
		"mint":   func() error { _, err := s.Mint(ctx, acct); return err },
		"get":    func() error { _, err := s.Get(ctx, token); return err },
		"claim":  func() error { _, err := s.Claim(ctx, token); return err },
		"revoke": func() error { return s.Revoke(ctx, token) },
		"secret": func() error { _, err := SharedSecret(ctx, client, ""); return err },
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			assert.Equal(t, sserrors.CodeAPIConnectionError, sserrors.CodeOf(err))
			assert.Equal(t, 503, sserrors.StatusOf(err))
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	srv := redistest.Start(t)
	for name, cfg := range map[string]Config{
		"brace":      {Prefix: "a{b"},
		"ttl":        {TTL: -time.Second},
		"claim ttl":  {ClaimTTL: time.Microsecond},
		"nil client": {},
	} {
		t.Run(name, func(t *testing.T) {
			var c redis.UniversalClient = srv.Client()
			if name == "nil client" {
				c = nil
			}
			_, err := New(c, cfg)
			assert.Equal(t, sserrors.CodeInvalidParameter, sserrors.CodeOf(err))
		})
	}
}
