package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/client"
	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// scripted is an in-memory transport (no network, so it runs inside a
// synctest bubble): each request is answered by answer, and its time is
// recorded.
type scripted struct {
	mu     sync.Mutex
	times  []time.Time
	keys   []string
	answer func(n int, w http.ResponseWriter, r *http.Request) error
}

func (s *scripted) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	n := len(s.times)
	s.times = append(s.times, time.Now())
	s.keys = append(s.keys, r.Header.Get("Idempotency-Key"))
	s.mu.Unlock()
	rec := httptest.NewRecorder()
	if err := s.answer(n, rec, r); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

// gaps returns the delays between consecutive requests.
func (s *scripted) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(s.times); i++ {
		out = append(out, s.times[i].Sub(s.times[i-1]))
	}
	return out
}

func (s *scripted) client(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New("http://streaming.test", append([]client.Option{client.WithAPIKey("k"), client.WithHTTPClient(&http.Client{Transport: s})}, opts...)...)
	require.NoError(t, err)
	return c
}

func refuse(w http.ResponseWriter, err *sserrors.Error, retryAfter time.Duration) {
	if retryAfter > 0 {
		err = err.WithRetryAfter(retryAfter)
	}
	sserrors.Write(w, err)
}

func created(w http.ResponseWriter) {
	sserrors.WriteData(w, map[string]any{"session_id": "s1", "realtime_endpoint": "ws://streaming.test/ws"})
}

func TestBackoffWithoutRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{answer: func(_ int, w http.ResponseWriter, _ *http.Request) error {
			refuse(w, sserrors.ErrSessionFull, 0)
			return nil
		}}
		c := s.client(t, client.WithBackoff(time.Second, 4*time.Second))
		_, err := c.NewSession(t.Context(), client.NewSessionRequest{})
		assert.ErrorIs(t, err, sserrors.ErrSessionFull)
		e, _ := sserrors.As(err)
		assert.Equal(t, 429, e.Status)
		gaps := s.gaps()
		require.Len(t, gaps, 2, "DefaultMaxRetries retries")
		assert.GreaterOrEqual(t, gaps[0], 500*time.Millisecond)
		assert.LessOrEqual(t, gaps[0], time.Second)
		assert.GreaterOrEqual(t, gaps[1], time.Second)
		assert.LessOrEqual(t, gaps[1], 2*time.Second)
		s.mu.Lock()
		defer s.mu.Unlock()
		assert.NotEmpty(t, s.keys[0])
		assert.Equal(t, s.keys[0], s.keys[1], "the same Idempotency-Key on every retry")
		assert.Equal(t, s.keys[0], s.keys[2])
	})
}

func TestBackoffIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{answer: func(_ int, w http.ResponseWriter, _ *http.Request) error {
			refuse(w, sserrors.ErrAPIConnectionError.WithStatus(503), 0)
			return nil
		}}
		c := s.client(t, client.WithBackoff(time.Second, 3*time.Second), client.WithMaxRetries(6))
		_, err := c.List(t.Context())
		assert.ErrorIs(t, err, sserrors.ErrAPIConnectionError)
		gaps := s.gaps()
		require.Len(t, gaps, 6)
		for _, g := range gaps {
			assert.LessOrEqual(t, g, 3*time.Second)
		}
		assert.GreaterOrEqual(t, gaps[5], 1500*time.Millisecond, "at the cap: at least half of it")
	})
}

func TestRetryAfterIsHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{answer: func(n int, w http.ResponseWriter, _ *http.Request) error {
			if n == 0 {
				refuse(w, sserrors.ErrMovioAPIExceedRateLimit, 3*time.Second)
				return nil
			}
			created(w)
			return nil
		}}
		c := s.client(t)
		sess, err := c.NewSession(t.Context(), client.NewSessionRequest{})
		require.NoError(t, err)
		assert.Equal(t, "s1", sess.ID())
		assert.Equal(t, []time.Duration{3 * time.Second}, s.gaps())
	})
}

func TestNoWaitPastTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{answer: func(_ int, w http.ResponseWriter, _ *http.Request) error {
			refuse(w, sserrors.ErrSessionFull, 5*time.Second)
			return nil
		}}
		c := s.client(t)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.NewSession(ctx, client.NewSessionRequest{})
		assert.ErrorIs(t, err, sserrors.ErrSessionFull, "the answer, not the deadline")
		e, _ := sserrors.As(err)
		assert.Equal(t, 5*time.Second, e.RetryAfter, "Retry-After is kept for the caller")
		assert.Zero(t, time.Since(start), "returned at once")
		assert.Empty(t, s.gaps(), "one request")
	})
}

func TestRetryAfterOverTheCapIsNotWaited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scripted{answer: func(_ int, w http.ResponseWriter, _ *http.Request) error {
			refuse(w, sserrors.ErrSessionFull, time.Hour)
			return nil
		}}
		c := s.client(t)
		_, err := c.NewSession(t.Context(), client.NewSessionRequest{})
		assert.ErrorIs(t, err, sserrors.ErrSessionFull)
		assert.Empty(t, s.gaps())
	})
}

func TestWithMaxRetries(t *testing.T) {
	for _, n := range []int{0, 1, 4} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &scripted{answer: func(_ int, w http.ResponseWriter, _ *http.Request) error {
					refuse(w, sserrors.ErrSessionFull, time.Second)
					return nil
				}}
				c := s.client(t, client.WithMaxRetries(n))
				_, err := c.NewSession(t.Context(), client.NewSessionRequest{})
				assert.ErrorIs(t, err, sserrors.ErrSessionFull)
				assert.Len(t, s.gaps(), n)
			})
		})
	}
}

func TestNeverRetriedCodes(t *testing.T) {
	for _, e := range []*sserrors.Error{
		sserrors.SessionState("connecting"), sserrors.ErrSessionNotFound, sserrors.ErrConcurrentLimitReached,
		sserrors.ErrTrialLimitReached, sserrors.ErrInvalidParameter, sserrors.ErrUnauthorized,
	} {
		t.Run(strconv.Itoa(int(e.Code)), func(t *testing.T) {
			s := &scripted{answer: func(_ int, w http.ResponseWriter, _ *http.Request) error {
				refuse(w, e, time.Second)
				return nil
			}}
			_, err := s.client(t).List(t.Context())
			assert.ErrorIs(t, err, e)
			assert.Empty(t, s.gaps())
		})
	}
}

// TestTransportRetries: a request without an answer is resent only when
// sending it twice is harmless.
func TestTransportRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lost := errors.New("connection reset by peer")
		s := &scripted{answer: func(_ int, w http.ResponseWriter, r *http.Request) error {
			if r.URL.Path == "/v1/streaming.new" {
				created(w)
				return nil
			}
			return lost
		}}
		c := s.client(t, client.WithoutGuard())
		sess, err := c.NewSession(t.Context(), client.NewSessionRequest{})
		require.NoError(t, err)
		assert.Equal(t, fsm.New, sess.State())

		count := func() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.times) }
		before := count()
		_, err = sess.Task(t.Context(), "hi")
		var te *client.TransportError
		require.ErrorAs(t, err, &te)
		assert.ErrorIs(t, err, lost)
		assert.Equal(t, before+1, count(), "a task is not resent")

		before = count()
		require.ErrorAs(t, sess.KeepAlive(t.Context()), &te)
		assert.Equal(t, before+3, count(), "keep_alive is resent")
	})
}

// TestRequestBodies: every field reaches the wire under its name; zero
// fields are not sent.
func TestRequestBodies(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	s := &scripted{answer: func(_ int, w http.ResponseWriter, r *http.Request) error {
		data, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.URL.Path+" "+string(data))
		mu.Unlock()
		if r.URL.Path == "/v1/streaming.new" {
			created(w)
			return nil
		}
		sserrors.WriteData(w, map[string]any{"task_id": "t1", "duration_ms": 1500})
		return nil
	}}
	c := s.client(t, client.WithoutGuard())
	ctx := t.Context()
	_, err := c.NewSession(ctx, client.NewSessionRequest{})
	require.NoError(t, err)
	sess, err := c.NewSession(ctx, client.NewSessionRequest{
		AvatarID: "a", AvatarName: "n", Quality: "low", Voice: &client.Voice{VoiceID: "v", Rate: 1.25, Emotion: "serious"},
		VideoEncoding: "H264", KnowledgeBase: "kb", KnowledgeBaseID: "kbid", Version: "v2",
		DisableIdleTimeout: true, ActivityIdleTimeout: 90 * time.Second,
	})
	require.NoError(t, err)
	res, err := sess.TaskWith(ctx, client.TaskRequest{Text: "hi", Type: "chat", Mode: "async"})
	require.NoError(t, err)
	assert.Equal(t, client.TaskResult{TaskID: "t1", Duration: 1500 * time.Millisecond}, res)
	_, err = sess.Task(ctx, "plain")
	require.NoError(t, err)
	assert.Equal(t, []string{
		`/v1/streaming.new {}`,
		`/v1/streaming.new {"avatar_id":"a","avatar_name":"n","quality":"low","voice":{"voice_id":"v","rate":1.25,"emotion":"serious"},"video_encoding":"H264","knowledge_base":"kb","knowledge_base_id":"kbid","version":"v2","disable_idle_timeout":true,"activity_idle_timeout":90}`,
		`/v1/streaming.task {"session_id":"s1","text":"hi","task_type":"chat","task_mode":"async"}`,
		`/v1/streaming.task {"session_id":"s1","text":"plain"}`,
	}, bodies)
}
