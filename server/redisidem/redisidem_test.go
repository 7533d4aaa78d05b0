package redisidem

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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
	goleak.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	idempotencytest.Run(t, func(t *testing.T) server.IdempotencyStore {
		require.NoError(t, srv.Client().FlushAll(context.Background()).Err())
		s, err := New(srv.Client(), Config{})
		require.NoError(t, err)
		return s
	})
}

func TestNewRefusesABadConfig(t *testing.T) {
	srv := redistest.Start(t)
	for _, cfg := range []Config{{Prefix: "a{b"}, {TTL: -time.Second}, {Lease: time.Microsecond}} {
		_, err := New(srv.Client(), cfg)
		assert.ErrorIs(t, err, sserrors.ErrInvalidParameter, "%+v", cfg)
	}
	_, err := New(nil, Config{})
	assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
}

func TestKeysExpireAndHideTheKey(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s, err := New(srv.Client(), Config{TTL: time.Hour, Lease: time.Minute})
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
	s, err := New(srv.Client(), Config{Lease: 100 * time.Millisecond})
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
	s, err := New(srv.NewClient(&redis.Options{MaxRetries: -1, ContextTimeoutEnabled: true}), Config{})
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

func newNodes(t *testing.T, n int) ([]node, *limits.Memory) {
	t.Helper()
	srv := redistest.Start(t)
	lim := limits.NewMemory(limits.MemoryConfig{Capacity: 100})
	t.Cleanup(func() { _ = lim.Close() })
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	accounts := server.AccountsByKey{"key-acme": {Name: "acme", Plan: limits.Plan{Name: "pro", MaxConcurrent: 100}}}
	var nodes []node
	for range n {
		mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars})
		require.NoError(t, err)
		store, err := New(srv.Client(), Config{})
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
	return nodes, lim
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
	nodes, lim := newNodes(t, 2)
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
	nodes, lim := newNodes(t, 2)
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
	s, err := New(client, Config{Lease: time.Hour})
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
