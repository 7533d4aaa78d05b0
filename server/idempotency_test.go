package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/session"
)

// keyed is the headers of a streaming.new with an API key and an
// Idempotency-Key.
func keyed(apiKey, idem string) map[string]string {
	return map[string]string{"X-Api-Key": apiKey, IdempotencyHeader: idem}
}

func (e *env) sessions(account string) int {
	e.t.Helper()
	infos, err := e.mgr.List(e.t.Context(), account)
	require.NoError(e.t, err)
	return len(infos)
}

func TestIdempotentNewReplaysTheFirstAnswer(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"quality":"low"}`
	first := e.do(http.MethodPost, PathNew, keyed("key-acme", "order-1"), body)
	require.Equal(t, http.StatusOK, first.status, first.body)
	assert.Empty(t, first.header.Get(ReplayedHeader))

	second := e.do(http.MethodPost, PathNew, keyed("key-acme", "order-1"), body)
	assert.Equal(t, first.status, second.status)
	assert.Equal(t, first.body, second.body, "byte for byte")
	assert.Equal(t, first.header.Get("Content-Type"), second.header.Get("Content-Type"))
	assert.Equal(t, "true", second.header.Get(ReplayedHeader))
	assert.Equal(t, 1, e.lim.heldCount(), "one slot")
	assert.Equal(t, 1, e.sessions("acme"), "one session")

	// Another key is another session.
	third := e.do(http.MethodPost, PathNew, keyed("key-acme", "order-2"), body)
	require.Equal(t, http.StatusOK, third.status, third.body)
	assert.NotEqual(t, first.body, third.body)
	assert.Equal(t, 2, e.lim.heldCount())
}

func TestIdempotentNewRefusesAnotherBody(t *testing.T) {
	e := newEnv(t, nil)
	first := e.do(http.MethodPost, PathNew, keyed("key-acme", "k"), `{}`)
	require.Equal(t, http.StatusOK, first.status, first.body)
	for _, body := range []string{`{"quality":"low"}`, `{ }`, ``} {
		r := e.do(http.MethodPost, PathNew, keyed("key-acme", "k"), body)
		assert.Equal(t, http.StatusBadRequest, r.status, "body %q", body)
		assert.Equal(t, bodyInvalid, r.body, "body %q", body)
	}
	assert.Equal(t, 1, e.lim.heldCount(), "nothing changed")
	assert.Equal(t, 1, e.sessions("acme"))
	var refused int
	for len(e.refused) > 0 {
		if r := <-e.refused; r.Endpoint == PathNew && r.Code == 400175 {
			refused++
		}
	}
	assert.Equal(t, 3, refused, "every refusal reaches the Refused hook")
}

func TestIdempotencyKeyBounds(t *testing.T) {
	e := newEnv(t, nil)
	for _, k := range []string{"", strings.Repeat("k", MaxIdempotencyKeyBytes+1)} {
		r := e.do(http.MethodPost, PathNew, keyed("key-acme", k), `{}`)
		assert.Equal(t, http.StatusBadRequest, r.status, "key of %d bytes", len(k))
		assert.Equal(t, bodyInvalid, r.body)
	}
	assert.Equal(t, 0, e.lim.heldCount(), "no slot taken")
	r := e.do(http.MethodPost, PathNew, keyed("key-acme", strings.Repeat("k", MaxIdempotencyKeyBytes)), `{}`)
	assert.Equal(t, http.StatusOK, r.status, r.body)

	// A caller that is not authenticated is refused as without a key.
	r = e.do(http.MethodPost, PathNew, keyed("key-nope", "k"), `{}`)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, bodyUnauthorized, r.body)
}

func TestIdempotentNewKeysArePerAccount(t *testing.T) {
	e := newEnv(t, nil)
	a := e.do(http.MethodPost, PathNew, keyed("key-acme", "k"), `{}`)
	b := e.do(http.MethodPost, PathNew, keyed("key-globex", "k"), `{}`)
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Equal(t, http.StatusOK, b.status, b.body)
	assert.NotEqual(t, a.body, b.body)
	assert.Empty(t, b.header.Get(ReplayedHeader))
	assert.Equal(t, 1, e.sessions("acme"))
	assert.Equal(t, 1, e.sessions("globex"))
}

func TestIdempotentNewConcurrentCallsCreateOneSession(t *testing.T) {
	e := newEnv(t, nil)
	const n = 20
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, e.http.URL+PathNew, strings.NewReader(`{}`))
			req.Header.Set("X-Api-Key", "key-acme")
			req.Header.Set(IdempotencyHeader, "same")
			resp, err := e.http.Client().Do(req)
			if !assert.NoError(t, err) {
				return
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			assert.Equal(t, http.StatusOK, resp.StatusCode, string(data))
			bodies[i] = string(data)
		}()
	}
	wg.Wait()
	for _, b := range bodies {
		assert.Equal(t, bodies[0], b)
	}
	assert.Equal(t, 1, e.lim.heldCount())
	assert.Equal(t, 1, e.sessions("acme"))
}

// dropFirst is a transport that delivers the first request to the server,
// reads the answer and throws it away, as a connection lost on the way
// back would.
type dropFirst struct {
	next    http.RoundTripper
	dropped atomic.Bool
}

func (d *dropFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	if err != nil || !d.dropped.CompareAndSwap(false, true) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, errors.New("connection reset by peer")
}

func TestIdempotentNewLostReplyWithABearerToken(t *testing.T) {
	e := newEnv(t, nil)
	var tok struct {
		Token string `json:"token"`
	}
	r := e.post("key-acme", PathCreateToken, `{}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.NoError(t, jsonData(r.body, &tok))

	client := &http.Client{Transport: &dropFirst{next: e.http.Client().Transport}}
	send := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, e.http.URL+PathNew, strings.NewReader(`{"quality":"high"}`))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set(IdempotencyHeader, "retry-me")
		return client.Do(req)
	}
	_, err := send()
	require.Error(t, err, "the first answer is lost")
	require.Equal(t, 1, e.lim.heldCount(), "yet the server created the session")

	resp, err := send()
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the spent token gets the replay, not 401: %s", data)
	assert.Equal(t, "true", resp.Header.Get(ReplayedHeader))
	var c created
	require.NoError(t, jsonData(string(data), &c))
	infos, err := e.mgr.List(t.Context(), "acme")
	require.NoError(t, err)
	require.Len(t, infos, 1)
	assert.Equal(t, infos[0].ID, c.SessionID, "the retry names the session the lost answer created")
	assert.Equal(t, 1, e.lim.heldCount(), "one slot")

	// The token is spent for any other streaming.new.
	r = e.do(http.MethodPost, PathNew, bearer(tok.Token), `{}`)
	assert.Equal(t, http.StatusUnauthorized, r.status)
}

func TestIdempotentNewFailureIsNotStored(t *testing.T) {
	e := newEnv(t, nil)
	held := e.newSession("key-limited") // the plan allows one
	r := e.do(http.MethodPost, PathNew, keyed("key-limited", "k"), `{}`)
	require.Equal(t, http.StatusTooManyRequests, r.status, r.body)
	assert.Equal(t, `{"code":10007,"message":"Concurrent limit reached"}`, r.body)

	stop := e.post("key-limited", PathStop, map[string]string{"session_id": held.SessionID})
	require.Equal(t, http.StatusOK, stop.status, stop.body)
	r = e.do(http.MethodPost, PathNew, keyed("key-limited", "k"), `{}`)
	assert.Equal(t, http.StatusOK, r.status, "the retry runs again: %s", r.body)
	assert.Empty(t, r.header.Get(ReplayedHeader))
}

func TestIdempotencyKeyExpires(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Idempotency.TTL = time.Hour })
	first := e.do(http.MethodPost, PathNew, keyed("key-acme", "k"), `{}`)
	require.Equal(t, http.StatusOK, first.status)
	e.clock.Advance(time.Hour - time.Second)
	again := e.do(http.MethodPost, PathNew, keyed("key-acme", "k"), `{}`)
	assert.Equal(t, first.body, again.body, "still kept")
	e.clock.Advance(time.Second)
	later := e.do(http.MethodPost, PathNew, keyed("key-acme", "k"), `{"quality":"low"}`)
	require.Equal(t, http.StatusOK, later.status, later.body)
	assert.NotEqual(t, first.body, later.body, "expired: a new call")
	assert.Equal(t, 2, e.lim.heldCount())
}

func TestMemoryIdempotencyIsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemoryIdempotency(MemoryIdempotencyConfig{TTL: time.Minute, MaxKeysPerAccount: 3, Now: func() time.Time { return now }})
	ctx := t.Context()
	answer := &StoredAnswer{Status: 200, Body: []byte("x")}
	store := func(account, key string) {
		k := IdempotencyKey{Account: account, Key: key}
		res, err := m.Begin(ctx, k)
		require.NoError(t, err)
		require.Nil(t, res.Replay, "%s/%s", account, key)
		require.NoError(t, m.Finish(ctx, k, res.Owner, answer))
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		store("acme", k)
	}
	store("globex", "a")
	assert.Equal(t, 4, m.Len(), "acme holds at most 3")
	res, err := m.Begin(ctx, IdempotencyKey{Account: "acme", Key: "a"})
	require.NoError(t, err)
	assert.Nil(t, res.Replay, "the oldest key of acme was forgotten")
	require.NoError(t, m.Finish(ctx, IdempotencyKey{Account: "acme", Key: "a"}, res.Owner, nil))
	res, err = m.Begin(ctx, IdempotencyKey{Account: "acme", Key: "d"})
	require.NoError(t, err)
	assert.NotNil(t, res.Replay)

	now = now.Add(time.Minute)
	res, err = m.Begin(ctx, IdempotencyKey{Account: "acme", Key: "zz"})
	require.NoError(t, err)
	assert.Equal(t, 1, m.Len(), "every expired answer is swept; the new call is in flight")
	require.NoError(t, m.Finish(ctx, IdempotencyKey{Account: "acme", Key: "zz"}, res.Owner, nil))
	assert.Equal(t, 0, m.Len())
}

// jsonData decodes a success envelope's data into v.
func jsonData(body string, v any) error {
	return sserrors.DecodeData([]byte(body), v)
}

// failingFinish is a store whose Finish fails, as a backend down would.
type failingFinish struct{ IdempotencyStore }

func (failingFinish) Finish(context.Context, IdempotencyKey, string, *StoredAnswer) error {
	return errors.New("backend down")
}

func TestIdempotencyFinishFailureReachesTheHook(t *testing.T) {
	failed := make(chan error, 1)
	e := newEnv(t, func(c *Config) {
		c.Idempotency = IdempotencyConfig{
			Store:        failingFinish{NewMemoryIdempotency(MemoryIdempotencyConfig{})},
			FinishFailed: func(err error) { failed <- err },
		}
	})
	r := e.do(http.MethodPost, PathNew, keyed("key-acme", "k"), `{}`)
	assert.Equal(t, http.StatusOK, r.status, "the answer still reaches the caller")
	select {
	case err := <-failed:
		assert.EqualError(t, err, "backend down")
	default:
		t.Fatal("FinishFailed was not called")
	}
}

// beginFails is a store that cannot be reached.
type beginFails struct{ IdempotencyStore }

func (beginFails) Begin(context.Context, IdempotencyKey) (Reservation, error) {
	return Reservation{}, errors.New("backend down")
}

func TestIdempotencyStoreDownIsUnavailable(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Idempotency.Store = beginFails{} })
	r := e.do(http.MethodPost, PathNew, keyed("key-acme", "k"), `{}`)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, `{"code":400558,"message":"API connection error"}`, r.body)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.Equal(t, 0, e.lim.heldCount(), "no session without the key's protection")
	r = e.do(http.MethodPost, PathNew, key("key-acme"), `{}`)
	assert.Equal(t, http.StatusOK, r.status, "a call without a key does not need the store")
}

func TestIdempotentNewBodyTooLarge(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 64 })
	r := e.do(http.MethodPost, PathNew, keyed("key-acme", "k"), `{"knowledge_base":"`+strings.Repeat("x", 100)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
	assert.Equal(t, bodyInvalid, r.body)
	assert.Equal(t, 0, e.lim.heldCount())
	r = e.do(http.MethodPost, PathNew, keyed("key-acme", "k"), `{}`)
	assert.Equal(t, http.StatusOK, r.status, "a refusal leaves the key free: %s", r.body)
}

// slowReserve is a TokenStore whose Reserve takes `wait` before holding
// the token, as a slow backend would.
type slowReserve struct {
	TokenStore
	wait time.Duration
}

func (s slowReserve) Reserve(ctx context.Context, token string) (TokenHold, error) {
	time.Sleep(s.wait)
	return s.TokenStore.Reserve(ctx, token)
}

// finishDeadline is an IdempotencyStore that records how much time each
// Finish was given.
type finishDeadline struct {
	IdempotencyStore
	left chan time.Duration
}

func (f finishDeadline) Finish(ctx context.Context, k IdempotencyKey, owner string, a *StoredAnswer) error {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(time.Hour)
	}
	f.left <- time.Until(d)
	return f.IdempotencyStore.Finish(ctx, k, owner, a)
}

// TestIdempotencyFinishBoundStartsAfterTheWork: Finish gets its whole bound
// however long streaming.new took; before, the bound ran from Begin, so a
// slow call left Finish no time and its key in flight. The bubble's clock
// stands still but for the slow Reserve's wait.
func TestIdempotencyFinishBoundStartsAfterTheWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const wait = 3 * time.Second
		left := make(chan time.Duration, 1)
		srv := newBubbleServer(t, func(c *Config) {
			c.Tokens = slowReserve{NewMemoryTokens(MemoryTokensConfig{}), wait}
			c.Idempotency.Store = finishDeadline{NewMemoryIdempotency(MemoryIdempotencyConfig{}), left}
		})
		token := tokenOf(t, serve(srv, http.MethodPost, PathCreateToken, key("key-acme"), `{}`))
		start := time.Now()
		r := serve(srv, http.MethodPost, PathNew, map[string]string{"Authorization": "Bearer " + token, IdempotencyHeader: "k"}, `{}`)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, wait, time.Since(start), "the work took the slow Reserve's wait")
		assert.Equal(t, finishTimeout, <-left, "Finish's bound counts from the end of the work")
	})
}

// newBubbleServer returns a Server over a real Manager and the real clock,
// for a synctest bubble: no listener, requests go to ServeHTTP (see serve).
// It is closed when the test ends.
func newBubbleServer(t *testing.T, tweak func(*Config)) *Server {
	t.Helper()
	mgr, err := session.NewManager(session.Config{Limiter: newFakeLimiter(1000), Avatars: testAvatars})
	require.NoError(t, err)
	cfg := Config{Manager: mgr, Accounts: testAccts, Avatars: testAvatars, Secret: testSecret}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, mgr.Close(context.Background()))
		require.NoError(t, srv.Close())
	})
	return srv
}

// serve sends one request straight to srv's ServeHTTP.
func serve(srv *Server, method, path string, hdr map[string]string, body string) response {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

// TestIdempotencyConfigBound: Config.Idempotency.MaxKeysPerAccount bounds
// the default store: past it, the account's oldest key is forgotten and
// its retry runs again.
func TestIdempotencyConfigBound(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Idempotency.MaxKeysPerAccount = 1 })
	first := e.do(http.MethodPost, PathNew, keyed("key-acme", "k1"), `{}`)
	require.Equal(t, http.StatusOK, first.status, first.body)
	r := e.do(http.MethodPost, PathNew, keyed("key-acme", "k2"), `{}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	r = e.do(http.MethodPost, PathNew, keyed("key-acme", "k2"), `{}`)
	assert.Equal(t, "true", r.header.Get(ReplayedHeader), "the newest key is kept")
	r = e.do(http.MethodPost, PathNew, keyed("key-acme", "k1"), `{}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Empty(t, r.header.Get(ReplayedHeader), "the oldest was forgotten")
	assert.NotEqual(t, first.body, r.body)
	assert.Equal(t, 3, e.lim.heldCount())
}
