package redisidem

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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
	"github.com/streamsession/streamsession/server/idempotencytest"
	"github.com/streamsession/streamsession/session"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(redistest.ExamplesMain(m, "Example"))
}

// testSecret is the secret of the nodes of one service in these tests.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	idempotencytest.Run(t, func(t *testing.T) server.IdempotencyStore {
		require.NoError(t, srv.Client().FlushAll(context.Background()).Err())
		s, err := New(srv.Client(), Config{Secret: testSecret})
		require.NoError(t, err)
		return s
	})
}

func TestContractBounded(t *testing.T) {
	srv := redistest.Start(t)
	idempotencytest.RunBounded(t, func(t *testing.T, maxKeys int) server.IdempotencyStore {
		require.NoError(t, srv.Client().FlushAll(context.Background()).Err())
		s, err := New(srv.Client(), Config{Secret: testSecret, MaxKeysPerAccount: maxKeys})
		require.NoError(t, err)
		return s
	})
}

func TestNewRefusesABadConfig(t *testing.T) {
	srv := redistest.Start(t)
	for _, cfg := range []Config{
		{}, {Secret: []byte("fifteen bytes..")},
		{Secret: testSecret, Prefix: "a{b"}, {Secret: testSecret, TTL: -time.Second},
		{Secret: testSecret, Lease: time.Microsecond},
		{Secret: testSecret, MaxKeysPerAccount: -1},
	} {
		_, err := New(srv.Client(), cfg)
		assert.ErrorIs(t, err, sserrors.ErrInvalidParameter, "%+v", cfg)
	}
	_, err := New(nil, Config{Secret: testSecret})
	assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
}

func TestKeysExpireAndHideTheKey(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s, err := New(srv.Client(), Config{Secret: testSecret, TTL: time.Hour, Lease: time.Minute})
	require.NoError(t, err)
	k := server.IdempotencyKey{Account: "acme", Key: "secret-key-value", BodyHash: sha256.Sum256([]byte("{}"))}
	res, err := s.Begin(ctx, k)
	require.NoError(t, err)
	keys, err := srv.Client().Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.NotContains(t, keys[0], "secret-key-value")
	assert.NotContains(t, keys[0], "acme")
	ttl, err := srv.Client().PTTL(ctx, keys[0]).Result()
	require.NoError(t, err)
	assert.InDelta(t, time.Minute.Seconds(), ttl.Seconds(), 5, "the marker lives for the lease")

	require.NoError(t, s.Finish(ctx, k, res.Owner, &server.StoredAnswer{Status: 200, ContentType: "application/json", Body: []byte("{}")}))
	ttl, err = srv.Client().PTTL(ctx, keys[0]).Result()
	require.NoError(t, err)
	assert.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 5, "the answer lives for the TTL")
}

// TestAbandonedMarkerLapses: a call whose node died (no Finish) frees the
// key when its lease lapses; the waiting call then runs.
func TestAbandonedMarkerLapses(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s, err := New(srv.Client(), Config{Secret: testSecret, Lease: 100 * time.Millisecond})
	require.NoError(t, err)
	k := server.IdempotencyKey{Account: "acme", Key: "k", BodyHash: sha256.Sum256(nil)}
	first, err := s.Begin(ctx, k)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	second, err := s.Begin(wctx, k)
	require.NoError(t, err)
	assert.Nil(t, second.Replay)
	assert.NotEqual(t, first.Owner, second.Owner)
	// The dead call's late Finish does not overwrite the new owner's key.
	require.NoError(t, s.Finish(ctx, k, first.Owner, &server.StoredAnswer{Status: 200, Body: []byte("late")}))
	require.NoError(t, s.Finish(ctx, k, second.Owner, &server.StoredAnswer{Status: 200, Body: []byte("mine")}))
	third, err := s.Begin(ctx, k)
	require.NoError(t, err)
	require.NotNil(t, third.Replay)
	assert.Equal(t, "mine", string(third.Replay.Body))
}

func TestRedisDownIsUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	s, err := New(srv.NewClient(&redis.Options{MaxRetries: -1, ContextTimeoutEnabled: true}), Config{Secret: testSecret})
	require.NoError(t, err)
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = s.Begin(ctx, server.IdempotencyKey{Account: "acme", Key: "k"})
	assert.ErrorIs(t, err, sserrors.ErrAPIConnectionError)
	assert.Equal(t, 503, sserrors.StatusOf(err))
}

// node is one server.Server with its own Manager; every node shares the
// limiter (one service) and the Redis idempotency store.
type node struct {
	mgr  *session.Manager
	http *httptest.Server
}

// newNodes starts one node per secret on one Redis.
func newNodes(t *testing.T, secrets ...[]byte) ([]node, *limits.Memory, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	lim := limits.NewMemory(limits.MemoryConfig{Capacity: 100})
	t.Cleanup(func() { _ = lim.Close() })
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	accounts := server.AccountsByKey{"key-acme": {Name: "acme", Plan: limits.Plan{Name: "pro", MaxConcurrent: 100}}}
	var nodes []node
	for _, secret := range secrets {
		mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars})
		require.NoError(t, err)
		store, err := New(srv.Client(), Config{Secret: secret})
		require.NoError(t, err)
		s, err := server.New(server.Config{Manager: mgr, Accounts: accounts, Avatars: avatars, Idempotency: server.IdempotencyConfig{Store: store}})
		require.NoError(t, err)
		h := httptest.NewServer(s)
		t.Cleanup(func() {
			h.Close()
			_ = s.Close()
			_ = mgr.Close(context.Background())
		})
		nodes = append(nodes, node{mgr: mgr, http: h})
	}
	return nodes, lim, srv
}

func post(t *testing.T, base, idem, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+server.PathNew, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", "key-acme")
	req.Header.Set(server.IdempotencyHeader, idem)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data), resp.Header
}

func countSessions(t *testing.T, nodes []node) int {
	n := 0
	for _, nd := range nodes {
		infos, err := nd.mgr.List(context.Background(), "acme")
		require.NoError(t, err)
		n += len(infos)
	}
	return n
}

func TestTwoNodesShareKeys(t *testing.T) {
	nodes, lim, _ := newNodes(t, testSecret, testSecret)
	st, first, _ := post(t, nodes[0].http.URL, "k1", `{}`)
	require.Equal(t, http.StatusOK, st, first)
	st, again, hdr := post(t, nodes[1].http.URL, "k1", `{}`)
	assert.Equal(t, http.StatusOK, st)
	assert.Equal(t, first, again, "node B replays node A's answer byte for byte")
	assert.Equal(t, "true", hdr.Get(server.ReplayedHeader))
	st, body, _ := post(t, nodes[1].http.URL, "k1", `{"quality":"low"}`)
	assert.Equal(t, http.StatusBadRequest, st)
	assert.Equal(t, `{"code":400175,"message":"Invalid parameter"}`, body)
	assert.Equal(t, 1, lim.InUse())
	assert.Equal(t, 1, countSessions(t, nodes))
}

func TestTwoNodesConcurrentCallsCreateOneSession(t *testing.T) {
	nodes, lim, _ := newNodes(t, testSecret, testSecret)
	const n = 20
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body, _ := post(t, nodes[i%2].http.URL, "same", `{}`)
			assert.Equal(t, http.StatusOK, st, body)
			bodies[i] = body
		}()
	}
	wg.Wait()
	for _, b := range bodies {
		assert.Equal(t, bodies[0], b)
	}
	assert.Equal(t, 1, lim.InUse())
	assert.Equal(t, 1, countSessions(t, nodes))
}

// loseReply is a go-redis hook that, once armed, runs the next script call
// and then reports it failed, as a connection cut after Redis answered.
type loseReply struct{ armed chan struct{} }

func (loseReply) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h loseReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil || (cmd.Name() != "evalsha" && cmd.Name() != "eval") {
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

// TestLostBeginReplyFreesTheKey: a Begin whose script ran (taking the
// marker) but whose reply was lost answers 503, and leaves the key free: a
// retry runs at once instead of waiting for the Lease of a call that never
// runs.
func TestLostBeginReplyFreesTheKey(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.NewClient(&redis.Options{MaxRetries: -1})
	hook := loseReply{armed: make(chan struct{}, 1)}
	client.AddHook(hook)
	s, err := New(client, Config{Secret: testSecret, Lease: time.Hour})
	require.NoError(t, err)
	k := server.IdempotencyKey{Account: "acme", Key: "k", BodyHash: sha256.Sum256(nil)}

	hook.armed <- struct{}{}
	_, err = s.Begin(ctx, k)
	require.ErrorIs(t, err, sserrors.ErrAPIConnectionError)
	assert.Equal(t, 503, sserrors.StatusOf(err))

	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := s.Begin(rctx, k)
	require.NoError(t, err, "the retry runs: the lost call's marker was freed")
	assert.Nil(t, res.Replay)
	assert.NotEmpty(t, res.Owner)
}

// otherSecret is the secret of a node misconfigured for another service.
var otherSecret = []byte("another service's secret, 32 b..")

// hashFields returns every field and value of the hash at key.
func hashFields(t *testing.T, client *redis.Client, key string) map[string]string {
	t.Helper()
	fields, err := client.HGetAll(context.Background(), key).Result()
	require.NoError(t, err)
	return fields
}

// onlyKey returns the one call's key in Redis, beside its account's index
// of stored answers.
func onlyKey(t *testing.T, client *redis.Client) string {
	t.Helper()
	keys, err := client.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	var calls []string
	for _, k := range keys {
		if !strings.HasSuffix(k, "}:z") {
			calls = append(calls, k)
		}
	}
	require.Len(t, calls, 1, "%q", keys)
	return calls[0]
}

// TestStoredAnswerHidesTheSession: Redis holds neither the access_token
// nor the session id of a stored answer, in any common encoding, in any key
// name or value; a node with the same secret still replays it.
func TestStoredAnswerHidesTheSession(t *testing.T) {
	nodes, _, srv := newNodes(t, testSecret, testSecret)
	st, first, _ := post(t, nodes[0].http.URL, "k1", `{}`)
	require.Equal(t, http.StatusOK, st, first)
	var resp struct {
		Data struct {
			SessionID   string `json:"session_id"`
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(first), &resp))
	require.NotEmpty(t, resp.Data.SessionID)
	require.NotEmpty(t, resp.Data.AccessToken)

	key := onlyKey(t, srv.Client())
	fields := hashFields(t, srv.Client(), key)
	require.Contains(t, fields, "a", "the answer is stored")
	stored := key
	for f, v := range fields {
		stored += "\x00" + f + "\x00" + v
	}
	for name, secret := range map[string]string{"access_token": resp.Data.AccessToken, "session id": resp.Data.SessionID} {
		for enc, text := range map[string]string{
			"raw":    secret,
			"hex":    hex.EncodeToString([]byte(secret)),
			"HEX":    strings.ToUpper(hex.EncodeToString([]byte(secret))),
			"std":    base64.StdEncoding.EncodeToString([]byte(secret)),
			"rawstd": base64.RawStdEncoding.EncodeToString([]byte(secret)),
			"url":    base64.URLEncoding.EncodeToString([]byte(secret)),
			"rawurl": base64.RawURLEncoding.EncodeToString([]byte(secret)),
		} {
			assert.NotContains(t, stored, text, "%s in %s", name, enc)
		}
	}
	assert.NotContains(t, stored, "access_token")

	st, again, hdr := post(t, nodes[1].http.URL, "k1", `{}`)
	assert.Equal(t, http.StatusOK, st)
	assert.Equal(t, first, again, "a node with the same secret replays the answer")
	assert.Equal(t, "true", hdr.Get(server.ReplayedHeader))
}

// TestAnotherSecretIsUnavailable: a node with another secret cannot open a
// stored answer: it answers 503/400558 with a Retry-After, creates no
// session and leaves the answer for the nodes that can open it.
func TestAnotherSecretIsUnavailable(t *testing.T) {
	nodes, lim, _ := newNodes(t, testSecret, otherSecret)
	st, first, _ := post(t, nodes[0].http.URL, "k1", `{}`)
	require.Equal(t, http.StatusOK, st, first)

	st, body, hdr := post(t, nodes[1].http.URL, "k1", `{}`)
	assert.Equal(t, http.StatusServiceUnavailable, st)
	assert.Equal(t, `{"code":400558,"message":"API connection error"}`, body)
	assert.NotEmpty(t, hdr.Get("Retry-After"))
	assert.Empty(t, hdr.Get(server.ReplayedHeader))
	assert.Equal(t, 1, lim.InUse(), "no second session")
	assert.Equal(t, 1, countSessions(t, nodes))

	st, again, _ := post(t, nodes[0].http.URL, "k1", `{}`)
	assert.Equal(t, http.StatusOK, st)
	assert.Equal(t, first, again, "the answer is intact")
}

// TestAlteredAnswerIsRefused: an answer altered in Redis, or moved under
// another key (even of the same account, with the same body), does not
// open: Begin is a backend failure, and runs nothing.
func TestAlteredAnswerIsRefused(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s, err := New(srv.Client(), Config{Secret: testSecret})
	require.NoError(t, err)
	answer := &server.StoredAnswer{Status: 200, ContentType: "application/json", Body: []byte(`{"data":{}}`)}
	k := server.IdempotencyKey{Account: "acme", Key: "k1", BodyHash: sha256.Sum256([]byte("{}"))}
	res, err := s.Begin(ctx, k)
	require.NoError(t, err)
	require.NoError(t, s.Finish(ctx, k, res.Owner, answer))
	key := onlyKey(t, srv.Client())
	sealed := hashFields(t, srv.Client(), key)["a"]
	require.NotEmpty(t, sealed)

	// Moved: k2's key gets k1's hash, body hash and sealed answer.
	k2 := k
	k2.Key = "k2"
	res2, err := s.Begin(ctx, k2)
	require.NoError(t, err)
	require.NoError(t, s.Finish(ctx, k2, res2.Owner, &server.StoredAnswer{Status: 200, Body: []byte("k2's")}))
	key2 := s.key(k2)
	require.NotEqual(t, key, key2)
	require.NoError(t, srv.Client().HSet(ctx, key2, "a", sealed).Err())
	_, err = s.Begin(ctx, k2)
	assert.ErrorIs(t, err, sserrors.ErrBackendUnavailable, "moved")
	assert.Equal(t, 503, sserrors.StatusOf(err))

	for _, i := range []int{0, len(sealed) / 2, len(sealed) - 1} {
		b := []byte(sealed)
		b[i] ^= 1
		require.NoError(t, srv.Client().HSet(ctx, key, "a", b).Err())
		_, err = s.Begin(ctx, k)
		assert.ErrorIs(t, err, sserrors.ErrBackendUnavailable, "byte %d flipped", i)
	}
	require.NoError(t, srv.Client().HSet(ctx, key, "a", sealed[:10]).Err())
	_, err = s.Begin(ctx, k)
	assert.ErrorIs(t, err, sserrors.ErrBackendUnavailable, "truncated")

	require.NoError(t, srv.Client().HSet(ctx, key, "a", sealed).Err())
	res, err = s.Begin(ctx, k)
	require.NoError(t, err)
	require.NotNil(t, res.Replay, "the original opens again")
	assert.Equal(t, *answer, *res.Replay)
}

// TestAccountsHaveTheirOwnHashTag: each account's keys share one hash tag,
// another account's keys another; the tag shows no account name.
func TestAccountsHaveTheirOwnHashTag(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	s, err := New(client, Config{Secret: testSecret, Prefix: "p"})
	require.NoError(t, err)
	tag := func(account, key string) string {
		k := s.key(server.IdempotencyKey{Account: account, Key: key})
		end := strings.IndexByte(k, '}')
		require.True(t, strings.HasPrefix(k, "{") && end > 0, k)
		assert.NotContains(t, k, account)
		return k[1:end]
	}
	acme := tag("acme", "k1")
	assert.Regexp(t, `^p:i:[0-9a-f]{32}$`, acme)
	assert.Equal(t, acme, tag("acme", "k2"), "one account, one tag")
	assert.NotEqual(t, acme, tag("globex", "k1"), "two accounts, two tags")
	assert.NotEqual(t, s.key(server.IdempotencyKey{Account: "acme", Key: "k1"}), s.key(server.IdempotencyKey{Account: "acme", Key: "k2"}))
}

// store runs one call of k on s to its stored answer.
func store(t *testing.T, s *Store, k server.IdempotencyKey, answer *server.StoredAnswer) {
	t.Helper()
	res, err := s.Begin(context.Background(), k)
	require.NoError(t, err)
	require.Nil(t, res.Replay, "%s runs", k.Key)
	require.NoError(t, s.Finish(context.Background(), k, res.Owner, answer))
}

// TestBoundPerAccount: past MaxKeysPerAccount stored answers, storing one
// more forgets the account's oldest (its retry runs again), not another
// account's; a key stored again is the newest.
func TestBoundPerAccount(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s, err := New(srv.Client(), Config{Secret: testSecret, MaxKeysPerAccount: 3})
	require.NoError(t, err)
	answer := &server.StoredAnswer{Status: 200, ContentType: "application/json", Body: []byte(`{}`)}
	k := func(account, key string) server.IdempotencyKey {
		return server.IdempotencyKey{Account: account, Key: key, BodyHash: sha256.Sum256([]byte("{}"))}
	}
	for _, key := range []string{"g1", "g2"} {
		store(t, s, k("globex", key), answer)
	}
	for _, key := range []string{"a1", "a2", "a3", "a4", "a5"} {
		store(t, s, k("acme", key), answer)
	}
	replays := func(account string, keys ...string) {
		t.Helper()
		for _, key := range keys {
			res, err := s.Begin(ctx, k(account, key))
			require.NoError(t, err)
			assert.NotNil(t, res.Replay, "%s/%s is kept", account, key)
		}
	}
	replays("acme", "a3", "a4", "a5")
	replays("globex", "g1", "g2")
	for _, key := range []string{"a1", "a2"} {
		_, err := srv.Client().Exists(ctx, s.key(k("acme", key))).Result()
		require.NoError(t, err)
		assert.Zero(t, srv.Client().Exists(ctx, s.key(k("acme", key))).Val(), "%s's key is deleted", key)
	}
	store(t, s, k("acme", "a1"), answer) // forgotten: runs again, now the newest
	replays("acme", "a1", "a4", "a5")
	res, err := s.Begin(ctx, k("acme", "a3"))
	require.NoError(t, err)
	assert.Nil(t, res.Replay, "a3 was the oldest")
	require.NoError(t, s.Finish(ctx, k("acme", "a3"), res.Owner, nil))
	_, index := s.keys(k("acme", "a1"))
	assert.Equal(t, int64(3), srv.Client().ZCard(ctx, index).Val())
	ttl, err := srv.Client().PTTL(ctx, index).Result()
	require.NoError(t, err)
	assert.InDelta(t, server.DefaultIdempotencyTTL.Seconds(), ttl.Seconds(), 5, "the index lives as long as its newest answer")
}

// TestFloodMemoryBound: one account storing three times its bound of
// answers the size of a streaming.new answer grows Redis's used_memory by
// the bound's worth only; the test logs the bytes per stored key.
func TestFloodMemoryBound(t *testing.T) {
	const bound = 2_000
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.NewClient(&redis.Options{PoolSize: 1})
	s, err := New(srv.NewClient(&redis.Options{PoolSize: 4}), Config{Secret: testSecret, MaxKeysPerAccount: bound})
	require.NoError(t, err)
	// An answer as streaming.new writes it: ids, an access token and the
	// realtime URL twice.
	token := strings.Repeat("A", 80)
	url := "ws://127.0.0.1:8080/v1/ws/streaming.chat?session_id=" + strings.Repeat("0", 32) + "&session_token=" + token
	body := `{"code":100,"message":"success","data":{"session_id":"` + strings.Repeat("0", 32) + `","access_token":"` + token +
		`","realtime_endpoint":"` + url + `","url":"` + url + `","is_paid":true,"session_duration_limit":600}}`
	answer := &server.StoredAnswer{Status: 200, ContentType: "application/json", Body: []byte(body)}
	store(t, s, server.IdempotencyKey{Account: "warm-up", Key: "w"}, answer) // scripts loaded
	before := memoryInfo(t, admin)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 3 * bound / 4 {
				k := server.IdempotencyKey{Account: "flooder", Key: fmt.Sprintf("k-%d-%d", w, i)}
				res, err := s.Begin(ctx, k)
				if !assert.NoError(t, err) {
					return
				}
				assert.NoError(t, s.Finish(ctx, k, res.Owner, answer))
			}
		})
	}
	wg.Wait()
	after := memoryInfo(t, admin)
	keys := admin.DBSize(ctx).Val()
	assert.Equal(t, int64(bound+1+2), keys, "the bound's keys, the flooder's index, the warm-up's key and index")
	perKey := (after - before) / bound
	t.Logf("Redis used_memory: %d before, %d after %d calls with a %d-byte answer: %+d bytes, %d per stored key",
		before, after, 3*bound, len(body), after-before, perKey)
	assert.Less(t, perKey, int64(3*len(body)), "the bound's worth: without it, three times as much")
}

// memoryInfo returns Redis's used_memory.
func memoryInfo(t *testing.T, client *redis.Client) int64 {
	t.Helper()
	info, err := client.Info(context.Background(), "memory").Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}
