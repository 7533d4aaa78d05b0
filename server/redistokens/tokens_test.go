package redistokens

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
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
	"github.com/streamsession/streamsession/server/tokenstest"
	"github.com/streamsession/streamsession/session"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(redistest.ExamplesMain(m, "Example"))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var acct = session.Account{Name: "acme", Plan: limits.TrialPlan}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// TestConformance runs the TokenStore suite with two Stores (two nodes) on
// one redis-server.
func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	n := 0
	tokenstest.Run(t, func(t *testing.T, maxPerAccount int) [2]server.TokenStore {
		n++ // a prefix per case: the cases do not see each other's keys
		var nodes [2]server.TokenStore
		for i := range nodes {
			s, err := New(srv.Client(), Config{Secret: testSecret, Prefix: fmt.Sprintf("case%d", n),
				MaxPerAccount: func(session.Account) int { return maxPerAccount }})
			require.NoError(t, err)
			nodes[i] = s
		}
		return nodes
	})
}

// TestRedisHoldsNoToken: Redis holds neither a token, nor the account's
// name outside its account record, and every key of an account shares one
// hash tag.
func TestRedisHoldsNoToken(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s, err := New(srv.Client(), Config{Secret: testSecret})
	require.NoError(t, err)
	token, err := s.Mint(ctx, acct)
	require.NoError(t, err)
	require.NoError(t, s.Spend(ctx, token, func(context.Context, session.Account) (string, error) { return "s1", nil }, nil))
	keys, err := srv.Client().Keys(ctx, "*").Result()
	require.NoError(t, err)
	assert.Len(t, keys, 3, "one account: its sorted set, states and record")
	body := strings.TrimPrefix(token, "sst_")
	for _, k := range keys {
		assert.NotContains(t, k, acct.Name)
		assert.NotContains(t, k, body[:16])
		assert.True(t, strings.HasPrefix(k, keys[0][:strings.Index(keys[0], "}")+1]), "one hash tag: %q", k)
	}
	members, err := srv.Client().ZRange(ctx, s.keys(s.accountTag(acct.Name))[0], 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, members, 1)
	assert.NotContains(t, token, hex.EncodeToString([]byte(members[0])))

	// Another secret opens none of these tokens, without asking Redis.
	other, err := New(srv.NewClient(&redis.Options{MaxRetries: -1}), Config{Secret: []byte("another secret, 16+ bytes")})
	require.NoError(t, err)
	srv.Kill()
	_, err = other.Get(ctx, token)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized, "refused before any round trip")
}

func TestTokensExpire(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	const ttl = 400 * time.Millisecond
	s, err := New(srv.Client(), Config{Secret: testSecret, TTL: ttl, MaxPerAccount: func(session.Account) int { return 2 }})
	require.NoError(t, err)
	used, err := s.Mint(ctx, acct)
	require.NoError(t, err)
	unused, err := s.Mint(ctx, acct)
	require.NoError(t, err)
	zset := s.keys(s.accountTag(acct.Name))[0]
	// Every use restarts the TTL: watch the scores (asking with Get would
	// be a use).
	score := func(token string) float64 {
		v, err := srv.Client().ZScore(ctx, zset, member(token)).Result()
		require.NoError(t, err)
		return v
	}
	time.Sleep(ttl / 4)
	_, err = s.Get(ctx, used)
	require.NoError(t, err)
	assert.Greater(t, score(used), score(unused), "the use restarted the TTL")
	_, err = s.Mint(ctx, acct)
	assert.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, sserrors.CodeOf(err))

	require.Eventually(t, func() bool {
		_, err := s.Mint(ctx, acct)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond, "an expired token stops counting")
	_, err = s.Get(ctx, unused)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
	require.Eventually(t, func() bool {
		return srv.Client().DBSize(ctx).Val() == 0
	}, 5*time.Second, 10*time.Millisecond, "an idle account's keys vanish")
}

// TestLeaseLapses: a Spend whose node dies leaves its token usable again
// after ClaimTTL; when the slow Spend then tries to bind, its lease is
// someone else's: it discards its session and refuses.
func TestLeaseLapses(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a, err := New(srv.Client(), Config{Secret: testSecret, ClaimTTL: 50 * time.Millisecond})
	require.NoError(t, err)
	b, err := New(srv.Client(), Config{Secret: testSecret, ClaimTTL: 50 * time.Millisecond})
	require.NoError(t, err)
	token, err := a.Mint(ctx, acct)
	require.NoError(t, err)
	var discarded []string
	err = a.Spend(ctx, token, func(context.Context, session.Account) (string, error) {
		// a is stuck here (or dead): b waits for the lease to lapse.
		require.Eventually(t, func() bool {
			err := b.Spend(ctx, token, func(context.Context, session.Account) (string, error) { return "on-b", nil }, nil)
			return err == nil
		}, 5*time.Second, 10*time.Millisecond, "spendable again after ClaimTTL")
		return "on-a", nil
	}, func(_ context.Context, id string) error {
		discarded = append(discarded, id)
		return nil
	})
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
	assert.Equal(t, []string{"on-a"}, discarded, "the late session is discarded")
	got, err := a.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, "on-b", got.SessionID)
}

// failScript fails every run of one script (EVALSHA or EVAL) with err.
type failScript struct {
	script *redis.Script
	err    error
}

func (failScript) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f failScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) > 1 && args[1] == f.script.Hash() {
			cmd.SetErr(f.err)
			return f.err
		}
		return next(ctx, cmd)
	}
}

func (failScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.NewClient(&redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1})
	s, err := New(client, Config{Secret: testSecret})
	require.NoError(t, err)
	token, err := s.Mint(context.Background(), acct)
	require.NoError(t, err)
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var created atomic.Int32
	for name, call := range map[string]func() error{
		"mint":  func() error { _, err := s.Mint(ctx, acct); return err },
		"get":   func() error { _, err := s.Get(ctx, token); return err },
		"check": func() error { _, err := s.Check(ctx, token, ""); return err },
		"spend": func() error {
			return s.Spend(ctx, token, func(context.Context, session.Account) (string, error) {
				created.Add(1)
				return "s1", nil
			}, nil)
		},
		"revoke": func() error { return s.Revoke(ctx, token) },
		"secret": func() error { _, err := SharedSecret(ctx, client, ""); return err },
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			assert.Equal(t, sserrors.CodeAPIConnectionError, sserrors.CodeOf(err))
			assert.Equal(t, 503, sserrors.StatusOf(err))
		})
	}
	assert.Zero(t, created.Load(), "no session without a reservation")
}

func TestNewRefusesBadConfig(t *testing.T) {
	srv := redistest.Start(t)
	for name, cfg := range map[string]Config{
		"brace":        {Secret: testSecret, Prefix: "a{b"},
		"ttl":          {Secret: testSecret, TTL: -time.Second},
		"claim ttl":    {Secret: testSecret, ClaimTTL: time.Microsecond},
		"no secret":    {},
		"short secret": {Secret: []byte("short")},
		"nil client":   {Secret: testSecret},
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

// loseReply runs one script (by its hash) and then reports it failed, as a
// connection cut after Redis answered, once armed.
type loseReply struct {
	script *redis.Script
	armed  chan struct{}
}

func (loseReply) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h loseReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if args := cmd.Args(); err != nil || len(args) < 2 || args[1] != h.script.Hash() {
			return err
		}
		select {
		case <-h.armed:
			lost := errors.New("read tcp: connection reset by peer")
			cmd.SetErr(lost)
			return lost
		default:
			return nil
		}
	}
}

func (loseReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestLostReservationIsGivenBack: a Spend whose reservation was made but
// whose reply was lost answers 503 and creates nothing, and the token is
// still unused: the client's retry is served, not refused with 401 until
// ClaimTTL.
func TestLostReservationIsGivenBack(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.NewClient(&redis.Options{MaxRetries: -1})
	require.NoError(t, reserveScript.Load(ctx, client).Err()) // EVALSHA, the hash the hook knows
	hook := loseReply{script: reserveScript, armed: make(chan struct{}, 1)}
	client.AddHook(hook)
	s, err := New(client, Config{Secret: testSecret, ClaimTTL: time.Hour})
	require.NoError(t, err)
	token, err := s.Mint(ctx, acct)
	require.NoError(t, err)
	var created []string
	create := func(_ context.Context, a session.Account) (string, error) {
		created = append(created, a.Name)
		return "s1", nil
	}

	hook.armed <- struct{}{}
	err = s.Spend(ctx, token, create, nil)
	assert.Equal(t, 503, sserrors.StatusOf(err))
	assert.Empty(t, created)

	name, err := s.Check(ctx, token, "")
	require.NoError(t, err, "the token is unused")
	assert.Equal(t, acct.Name, name)
	require.NoError(t, s.Spend(ctx, token, create, nil), "the retry spends it")
	assert.Equal(t, []string{acct.Name}, created)
}

// TestLostBindingIsUndone: a Spend whose binding was made but whose reply
// was lost answers 503 and discards the session, and the token is unused
// again instead of spent on the discarded session.
func TestLostBindingIsUndone(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.NewClient(&redis.Options{MaxRetries: -1})
	require.NoError(t, commitScript.Load(ctx, client).Err())
	hook := loseReply{script: commitScript, armed: make(chan struct{}, 1)}
	client.AddHook(hook)
	s, err := New(client, Config{Secret: testSecret})
	require.NoError(t, err)
	token, err := s.Mint(ctx, acct)
	require.NoError(t, err)
	var discarded []string
	discard := func(_ context.Context, id string) error {
		discarded = append(discarded, id)
		return nil
	}

	hook.armed <- struct{}{}
	err = s.Spend(ctx, token, func(context.Context, session.Account) (string, error) { return "s1", nil }, discard)
	assert.Equal(t, 503, sserrors.StatusOf(err))
	assert.Equal(t, []string{"s1"}, discarded)

	got, err := s.Get(ctx, token)
	require.NoError(t, err)
	assert.Empty(t, got.SessionID, "the token is not spent on the discarded session")
	require.NoError(t, s.Spend(ctx, token, func(context.Context, session.Account) (string, error) { return "s2", nil }, discard))
	got, err = s.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, "s2", got.SessionID)
}
