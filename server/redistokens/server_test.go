package redistokens

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/internal/stacktest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// node is one server of a service whose tokens are in Redis.
type node struct {
	svc *stacktest.Stack
	ts  *httptest.Server
}

// startNode starts a server of the demo's two accounts, on pro and trial
// plans, on client, and counts its refusals by code in refusals.
func startNode(t *testing.T, client redis.UniversalClient, pro, trial limits.Plan, refusals *sync.Map) *node {
	t.Helper()
	maxTokens := func(a session.Account) int { return a.Plan.MaxTokens }
	tokens, err := New(client, Config{Secret: testSecret, MaxPerAccount: maxTokens})
	require.NoError(t, err)
	hooks := server.Hooks{Refused: func(r server.Refusal) {
		n, _ := refusals.LoadOrStore(r.Code, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
	}}
	svc := stacktest.New(t, stacktest.DemoAccounts(pro, trial), server.Config{Tokens: tokens, Secret: testSecret, Hooks: hooks})
	n := &node{svc: svc, ts: httptest.NewServer(svc.Server)}
	t.Cleanup(n.ts.Close)
	return n
}

type answer struct {
	status     int
	retryAfter string
	body       []byte
}

// post calls path on n with auth: an API key, or a bearer token ("sst_…").
func (n *node) post(t *testing.T, path, auth string) answer {
	method := http.MethodPost
	if path == server.PathList {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, n.ts.URL+path, strings.NewReader(`{}`))
	require.NoError(t, err)
	if strings.HasPrefix(auth, "sst_") {
		req.Header.Set("Authorization", "Bearer "+auth)
	} else {
		req.Header.Set("X-Api-Key", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), body}
}

func (a answer) token(t *testing.T) string {
	var v struct {
		Data struct{ Token string } `json:"data"`
	}
	require.NoError(t, json.Unmarshal(a.body, &v), string(a.body))
	require.NotEmpty(t, v.Data.Token, string(a.body))
	return v.Data.Token
}

// memoryInfo returns one field of INFO memory.
func memoryInfo(t *testing.T, client *redis.Client, field string) int64 {
	info, err := client.Info(context.Background(), "memory").Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no %s in INFO memory", field)
	return 0
}

// Memory bound of the flood tests: each outstanding token costs Redis at
// most perTokenBytes (a sorted-set entry of 16 bytes and a score: MEMORY
// USAGE measures about 115), plus redisOverhead for the account's three
// keys, the scripts, the test's few connections' buffers and allocator
// slack.
const (
	perTokenBytes = 256
	redisOverhead = 256 << 10
)

// TestFloodTwoNodes: one account floods streaming.create_token through two
// servers sharing one redis-server. Exactly its bound of tokens is minted;
// every other call is 429/400140 with a Retry-After, counted by the
// Refused hook; another account still mints and calls on both nodes; the
// flooder's keys hold under bound × perTokenBytes. (used_memory is measured
// by TestFloodMemoryBound, with fewer connections: here 32 connections'
// query buffers, tens of KiB each, would drown it.)
func TestFloodTwoNodes(t *testing.T) {
	const bound = 1000
	srv := redistest.Start(t)
	admin := srv.Client()
	var refusals sync.Map
	pro := limits.Plan{Name: "pro", MaxConcurrent: 100, MaxTokens: bound}
	trial := limits.Plan{Name: "trial", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 300, MaxTokens: 5}
	nodes := []*node{startNode(t, srv.Client(), pro, trial, &refusals), startNode(t, srv.Client(), pro, trial, &refusals)}

	const workers, each = 16, 200
	var wg sync.WaitGroup
	// Warm up: every worker's connection to Redis is open (its buffers
	// count in used_memory) and the scripts are loaded before measuring.
	for w := range workers {
		wg.Go(func() { nodes[w%2].post(t, server.PathCreateToken, "demo-trial-key") })
	}
	wg.Wait()
	require.NoError(t, admin.FlushAll(context.Background()).Err())
	refusals.Clear()

	var ok, refused atomic.Int32
	for w := range workers {
		wg.Go(func() {
			for range each {
				a := nodes[w%2].post(t, server.PathCreateToken, "demo-pro-key")
				switch a.status {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
					assert.JSONEq(t, `{"code":400140,"message":"Exceed rate limit"}`, string(a.body))
					assert.Equal(t, "60", a.retryAfter, "the oldest token expires in an hour: capped")
				default:
					t.Errorf("create_token: %d %s", a.status, a.body)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(bound), ok.Load())
	assert.Equal(t, int32(workers*each-bound), refused.Load())
	n, _ := refusals.Load(sserrors.CodeMovioAPIExceedRateLimit)
	require.NotNil(t, n)
	assert.Equal(t, int32(workers*each-bound), n.(*atomic.Int32).Load(), "every refusal reaches the Refused hook")

	var keysBytes int64
	for _, k := range admin.Keys(context.Background(), "*").Val() {
		keysBytes += admin.MemoryUsage(context.Background(), k).Val()
	}
	t.Logf("MEMORY USAGE of the flooder's keys with %d tokens: %d bytes (%d per token)", bound, keysBytes, keysBytes/bound)
	assert.Less(t, keysBytes, int64(bound*perTokenBytes), "the keys")
	keys, err := admin.DBSize(context.Background()).Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, keys, int64(3+1), "the flooder's three keys (and the shared secret's, if any)")

	// Another account is not affected, on either node. (Each node runs
	// its sessions in memory here: a token is used on the node where it
	// was spent.)
	for i, n := range nodes {
		token := n.post(t, server.PathCreateToken, "demo-trial-key").token(t)
		other := nodes[1-i]
		assert.Equal(t, http.StatusOK, other.post(t, server.PathList, token).status)
		spent := n.post(t, server.PathNew, token)
		assert.Equal(t, http.StatusOK, spent.status, "spent: %s", spent.body)
		assert.Equal(t, http.StatusOK, n.post(t, server.PathList, token).status)
	}
	// And the flooder's tokens still work.
	assert.Equal(t, http.StatusTooManyRequests, nodes[0].post(t, server.PathCreateToken, "demo-pro-key").status)
}

// TestBindFails: when Redis refuses the binding after the session was
// created, streaming.new answers 503/400558, the session is stopped (its
// slot free: a session of a plan with one slot can be created right
// after), and the token is not spent once its lease lapses.
func TestBindFails(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.NewClient(&redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1})
	client.AddHook(failScript{script: commitScript, err: errors.New("injected: connection reset")})
	var refusals sync.Map
	n := startNode(t, client, limits.Plan{Name: "pro", MaxConcurrent: 1, MaxTokens: 1000},
		limits.Plan{Name: "trial", MaxConcurrent: 3, Trial: true, MonthlyMinutes: 300, MaxTokens: 1000}, &refusals)

	token := n.post(t, server.PathCreateToken, "demo-pro-key").token(t)
	a := n.post(t, server.PathNew, token)
	assert.Equal(t, http.StatusServiceUnavailable, a.status, string(a.body))
	assert.JSONEq(t, `{"code":400558,"message":"API connection error"}`, string(a.body))
	list, err := n.svc.Manager.List(context.Background(), "demo-pro")
	require.NoError(t, err)
	for _, s := range list {
		assert.Equal(t, "closed", s.State.String(), "the session whose token could not be bound is stopped")
	}
	assert.Equal(t, http.StatusOK, n.post(t, server.PathNew, "demo-pro-key").status, "its slot is free")

	// The token is held by the failed call's Reserve, not spent: it still
	// authorises the lists.
	assert.Equal(t, http.StatusOK, n.post(t, server.PathList, token).status)
}

// TestFloodMemoryBound: two nodes (two Stores, each with its own small
// connection pool) flood Mint for one account, three times its bound;
// exactly the bound is minted, and Redis's used_memory grows by less than
// bound × perTokenBytes + redisOverhead.
func TestFloodMemoryBound(t *testing.T) {
	const bound = 10_000
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.NewClient(&redis.Options{PoolSize: 1})
	var nodes [2]*Store
	for i := range nodes {
		s, err := New(srv.NewClient(&redis.Options{PoolSize: 2, ContextTimeoutEnabled: true}), Config{Secret: testSecret,
			MaxPerAccount: func(session.Account) int { return bound }})
		require.NoError(t, err)
		nodes[i] = s
		_, err = s.Mint(ctx, session.Account{Name: "warm-up"}) // connections open, scripts loaded
		require.NoError(t, err)
		_, err = s.Mint(ctx, session.Account{Name: "warm-up"})
		require.NoError(t, err)
	}
	before := memoryInfo(t, admin, "used_memory")
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range 3 * bound / 4 {
				_, err := nodes[w%2].Mint(ctx, acct)
				if err == nil {
					ok.Add(1)
				} else if assert.Equal(t, sserrors.CodeMovioAPIExceedRateLimit, sserrors.CodeOf(err), "%v", err) {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	after := memoryInfo(t, admin, "used_memory")
	assert.Equal(t, int32(bound), ok.Load())
	assert.Equal(t, int32(2*bound), refused.Load())
	t.Logf("Redis used_memory: %d before, %d after %d tokens (and %d refusals): %+d bytes, %d per token",
		before, after, bound, 2*bound, after-before, (after-before)/bound)
	assert.Less(t, after-before, int64(bound*perTokenBytes+redisOverhead))
}
