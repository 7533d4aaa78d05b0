package redistokens

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
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
	spend(t, s, token, "s1")
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

// TestTokensExpire: every use restarts a token's TTL, an expired token
// stops counting and is refused, and an account's keys expire with its
// last use. Time passes by moving the stored expiries back, as Redis's
// clock would, not by waiting.
func TestTokensExpire(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client()
	const ttl = time.Hour
	s, err := New(rdb, Config{Secret: testSecret, TTL: ttl, MaxPerAccount: func(session.Account) int { return 2 }})
	require.NoError(t, err)
	used, err := s.Mint(ctx, acct)
	require.NoError(t, err)
	unused, err := s.Mint(ctx, acct)
	require.NoError(t, err)
	keys := s.keys(s.accountTag(acct.Name))
	// score reads a token's expiry (asking with Get would be a use);
	// age moves it back by d.
	score := func(token string) int64 {
		v, err := rdb.ZScore(ctx, keys[0], member(token)).Result()
		require.NoError(t, err)
		return int64(v)
	}
	age := func(token string, d time.Duration) {
		require.NoError(t, rdb.ZAdd(ctx, keys[0], redis.Z{Score: float64(score(token) - d.Milliseconds()), Member: member(token)}).Err())
	}
	redisNow := func() int64 {
		now, err := rdb.Time(ctx).Result()
		require.NoError(t, err)
		return now.UnixMilli()
	}

	age(used, ttl/2)
	age(unused, ttl/2)
	before := redisNow()
	_, err = s.Get(ctx, used)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, score(used), before+ttl.Milliseconds(), "the use restarted the TTL")
	assert.Less(t, score(unused), before+ttl.Milliseconds()-ttl.Milliseconds()/4, "the other token kept its age")
	_, err = s.Mint(ctx, acct)
	assert.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, sserrors.CodeOf(err))

	age(unused, ttl) // now past its expiry
	_, err = s.Mint(ctx, acct)
	require.NoError(t, err, "an expired token stops counting")
	_, err = s.Get(ctx, unused)
	assert.ErrorIs(t, err, sserrors.ErrUnauthorized)
	for _, k := range []string{keys[0], keys[2]} { // no token is held or spent: no states hash
		left, err := rdb.PTTL(ctx, k).Result()
		require.NoError(t, err)
		assert.Greater(t, left, ttl-time.Minute, "%s expires a TTL after the last use", k)
		assert.LessOrEqual(t, left, ttl, k)
	}
}

// spend reserves token and binds it to id, as streaming.new does.
func spend(t *testing.T, s *Store, token, id string) {
	t.Helper()
	hold, err := s.Reserve(context.Background(), token)
	require.NoError(t, err)
	require.NoError(t, s.Bind(context.Background(), token, hold, id))
}

// lapse ends the lease of the Reserve holding token now, as ClaimTTL
// passing would.
func lapse(t *testing.T, rdb redis.UniversalClient, s *Store, token string) {
	t.Helper()
	ctx := context.Background()
	keys, m, ok := s.open(token)
	require.True(t, ok)
	st, err := rdb.HGet(ctx, keys[1], m).Result()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(st, "r"), "held: %q", st)
	require.NoError(t, rdb.HSet(ctx, keys[1], m, st[:17]+"0").Err())
}

// TestLeaseLapses: a Reserve whose node dies leaves its token usable again
// after ClaimTTL; when the slow node then tries to bind, its lease is
// someone else's: Bind refuses and changes nothing.
func TestLeaseLapses(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a, err := New(srv.Client(), Config{Secret: testSecret})
	require.NoError(t, err)
	b, err := New(srv.Client(), Config{Secret: testSecret})
	require.NoError(t, err)
	token, err := a.Mint(ctx, acct)
	require.NoError(t, err)
	stale, err := a.Reserve(ctx, token)
	require.NoError(t, err)
	_, err = b.Reserve(ctx, token)
	require.ErrorIs(t, err, sserrors.ErrUnauthorized, "held while the lease runs")
	lapse(t, srv.Client(), a, token) // a is stuck (or dead) past ClaimTTL
	spend(t, b, token, "on-b")
	assert.ErrorIs(t, a.Bind(ctx, token, stale, "on-a"), sserrors.ErrUnauthorized)
	require.NoError(t, a.Release(ctx, token, stale))
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
	hold := server.TokenHold{Account: acct, ID: "0123456789abcdef"}
	for name, call := range map[string]func() error{
		"mint":    func() error { _, err := s.Mint(ctx, acct); return err },
		"get":     func() error { _, err := s.Get(ctx, token); return err },
		"check":   func() error { _, err := s.Check(ctx, token, "s1"); return err },
		"reserve": func() error { _, err := s.Reserve(ctx, token); return err },
		"bind":    func() error { return s.Bind(ctx, token, hold, "s1") },
		"release": func() error { return s.Release(ctx, token, hold) },
		"revoke":  func() error { return s.Revoke(ctx, token) },
		"secret":  func() error { _, err := SharedSecret(ctx, client, ""); return err },
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

// TestLostReservationIsGivenBack: a Reserve whose hold was made but whose
// reply was lost answers 503, and the token is still unused: the client's
// retry is served, not refused with 401 until ClaimTTL.
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

	hook.armed <- struct{}{}
	_, err = s.Reserve(ctx, token)
	assert.Equal(t, 503, sserrors.StatusOf(err))

	hold, err := s.Reserve(ctx, token)
	require.NoError(t, err, "the token is unused: the retry holds it")
	assert.Equal(t, acct, hold.Account)
	require.NoError(t, s.Bind(ctx, token, hold, "s1"))
}

// TestLostBindingIsUndone: a Bind whose binding was made but whose reply
// was lost answers 503 (the caller then stops its session), and the token
// is unused again instead of spent on that session.
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

	hook.armed <- struct{}{}
	hold, err := s.Reserve(ctx, token)
	require.NoError(t, err)
	err = s.Bind(ctx, token, hold, "s1")
	assert.Equal(t, 503, sserrors.StatusOf(err))

	got, err := s.Get(ctx, token)
	require.NoError(t, err)
	assert.Empty(t, got.SessionID, "the token is not spent on the stopped session")
	spend(t, s, token, "s2")
	got, err = s.Get(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, "s2", got.SessionID)
}
