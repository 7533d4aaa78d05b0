package observe_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// syncBuffer is a log sink that hooks on several goroutines may write to
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// noTime drops the time from every line, so that logs compare exactly.
func noTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// handlers are the two formats of examples/streaming.
var handlers = []struct {
	name string
	new  func(w *syncBuffer) slog.Handler
}{
	{"text", func(w *syncBuffer) slog.Handler {
		return slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: noTime})
	}},
	{"json", func(w *syncBuffer) slog.Handler {
		return slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: noTime})
	}},
}

// sha12 is the reference SessionRef, written out independently.
func sha12(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])[:12]
}

func TestSessionRef(t *testing.T) {
	tests := []struct{ id, want string }{
		{"", ""},
		{"0123456789abcdef0123456789abcdef", sha12("0123456789abcdef0123456789abcdef")},
		{"x", sha12("x")},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got := observe.SessionRef(tt.id)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, server.ShortHash(tt.id), got, "the server's hooks name sessions the same way")
			if tt.id != "" {
				assert.NotContains(t, got, tt.id)
			}
		})
	}
	assert.NotEqual(t, observe.SessionRef("a"), observe.SessionRef("b"))
}

func TestRedact(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	tests := []struct{ in, want string }{
		{"", ""},
		{"dial tcp 127.0.0.1:6379: connect: connection refused", "dial tcp 127.0.0.1:6379: connect: connection refused"},
		{"session " + id + " expired", "session [redacted] expired"},
		{id, "[redacted]"},
		{id + "/" + id, "[redacted]/[redacted]"},
		{"/v1/streaming.create_token", "/v1/streaming.create_token"},
		{"/v1/" + id, "/v1/[redacted]"},
		{"token YWNtZQ.3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!", "token YWNtZQ.[redacted]!"},
		{"nineteen_characters twenty__characters__ ", "nineteen_characters [redacted] "},
		{"ünïcode " + id, "ünïcode [redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, observe.Redact(tt.in))
		})
	}
}

// TestJoinHooks checks the order of the calls, that a hook no input sets
// stays nil, and that a single one is passed through.
func TestJoinHooks(t *testing.T) {
	var calls []string
	rec := func(name string) session.Hooks {
		return session.Hooks{
			OnTransition: func(e session.Event) { calls = append(calls, name+":transition:"+e.To.String()) },
			OnRefused:    func(a session.Account, c sserrors.Code) { calls = append(calls, name+":refused:"+a.Name) },
			OnLimiter: func(op session.LimiterOp, d time.Duration, err error) {
				calls = append(calls, name+":limiter:"+op.String())
			},
			OnBackgroundError: func(op session.BackgroundOp, err error) {
				calls = append(calls, name+":background:"+op.String())
			},
		}
	}
	j := observe.JoinHooks(rec("a"), session.Hooks{}, rec("b"))
	j.OnTransition(session.Event{To: fsm.New})
	j.OnRefused(session.Account{Name: "acme"}, sserrors.CodeConcurrentLimitReached)
	j.OnLimiter(session.LimiterAcquire, 0, nil)
	j.OnBackgroundError(session.BackgroundTimerClose, errors.New("down"))
	assert.Equal(t, []string{
		"a:transition:new", "b:transition:new",
		"a:refused:acme", "b:refused:acme",
		"a:limiter:acquire", "b:limiter:acquire",
		"a:background:timer_close", "b:background:timer_close",
	}, calls)

	none := observe.JoinHooks(session.Hooks{}, session.Hooks{})
	assert.Nil(t, none.OnTransition)
	assert.Nil(t, none.OnRefused)
	assert.Nil(t, none.OnLimiter, "the Manager must be able to skip timing the limiter")
	assert.Nil(t, none.OnBackgroundError)
	assert.Equal(t, session.Hooks{}, observe.JoinHooks())

	calls = nil
	only := observe.JoinHooks(session.Hooks{OnRefused: func(session.Account, sserrors.Code) { calls = append(calls, "only") }})
	assert.Nil(t, only.OnTransition)
	assert.Nil(t, only.OnLimiter)
	only.OnRefused(session.Account{Name: "acme"}, 1)
	assert.Equal(t, []string{"only"}, calls)
}

func TestJoinServerHooks(t *testing.T) {
	var calls []string
	rec := func(name string) server.Hooks {
		return server.Hooks{
			SocketOpened: func(s realtime.SocketInfo) { calls = append(calls, name+":opened:"+s.Account.Name) },
			SocketClosed: func(s realtime.SocketInfo) { calls = append(calls, name+":closed:"+s.Account.Name) },
			Refused:      func(r server.Refusal) { calls = append(calls, name+":refused:"+r.Endpoint) },
			AnnounceFailed: func(f realtime.AnnounceFailure) {
				calls = append(calls, name+":unannounced:"+f.Account.Name)
			},
		}
	}
	j := observe.JoinServerHooks(rec("a"), server.Hooks{}, rec("b"))
	j.SocketOpened(realtime.SocketInfo{Account: session.Account{Name: "acme"}})
	j.SocketClosed(realtime.SocketInfo{Account: session.Account{Name: "acme"}})
	j.Refused(server.Refusal{Endpoint: "/v1/streaming.new"})
	j.AnnounceFailed(realtime.AnnounceFailure{SocketInfo: realtime.SocketInfo{Account: session.Account{Name: "acme"}}})
	assert.Equal(t, []string{
		"a:opened:acme", "b:opened:acme", "a:closed:acme", "b:closed:acme",
		"a:refused:/v1/streaming.new", "b:refused:/v1/streaming.new",
		"a:unannounced:acme", "b:unannounced:acme",
	}, calls)
	none := observe.JoinServerHooks(server.Hooks{})
	assert.Nil(t, none.SocketOpened)
	assert.Nil(t, none.SocketClosed)
	assert.Nil(t, none.Refused)
	assert.Nil(t, none.AnnounceFailed)
}

// TestLevelsAndFields checks each line's level and fields in isolation,
// including odd input (codes outside the catalog, states outside the enum)
// which must log, not panic.
func TestLevelsAndFields(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		log  func(s session.Hooks, h server.Hooks)
		want string
	}{
		{"refused 4xx", func(s session.Hooks, _ server.Hooks) {
			s.OnRefused(session.Account{Name: "acme"}, sserrors.CodeSessionFull)
		},
			`level=INFO msg="session refused" account=acme code=10014 message="Session full"`},
		{"refused 400558", func(s session.Hooks, _ server.Hooks) {
			s.OnRefused(session.Account{Name: "acme"}, sserrors.CodeAPIConnectionError)
		},
			`level=WARN msg="session refused" account=acme code=400558 message="API connection error"`},
		{"refused 500000", func(s session.Hooks, _ server.Hooks) {
			s.OnRefused(session.Account{Name: "acme"}, sserrors.CodeInternalServerError)
		},
			`level=WARN msg="session refused" account=acme code=500000 message="Internal server error"`},
		{"refused, code outside the catalog", func(s session.Hooks, _ server.Hooks) { s.OnRefused(session.Account{}, 42) },
			`level=WARN msg="session refused" account="" code=42 message=""`},
		{"limiter success is silent", func(s session.Hooks, _ server.Hooks) { s.OnLimiter(session.LimiterRenew, time.Second, nil) }, ``},
		{"limiter failure", func(s session.Hooks, _ server.Hooks) {
			s.OnLimiter(session.LimiterRelease, 1500*time.Millisecond, errors.New("redis: slot "+id+" gone"))
		}, `level=WARN msg="limiter call failed" op=release duration=1.5s code=500000 error="redis: slot [redacted] gone"`},
		{"odd transition", func(s session.Hooks, _ server.Hooks) {
			s.OnTransition(session.Event{SessionID: id, From: fsm.State(9), To: fsm.Closed, Epoch: 7, Reason: session.Reason(99)})
		}, `level=INFO msg="session transition" account="" session=` + sha12(id) + ` from=unknown to=closed epoch=7 reason=Reason(99)`},
		{"socket opened", func(_ session.Hooks, h server.Hooks) {
			h.SocketOpened(realtime.SocketInfo{Account: session.Account{Name: "acme"}, SessionHash: server.ShortHash(id)})
		}, `level=INFO msg="realtime socket opened" account=acme session=` + sha12(id)},
		{"socket closed", func(_ session.Hooks, h server.Hooks) {
			h.SocketClosed(realtime.SocketInfo{Account: session.Account{Name: "acme"}, SessionHash: server.ShortHash(id)})
		}, `level=INFO msg="realtime socket closed" account=acme session=` + sha12(id)},
		{"request refused, no session", func(_ session.Hooks, h server.Hooks) {
			h.Refused(server.Refusal{Endpoint: "/v1/streaming.new", Code: sserrors.CodeUnauthorized, Status: 401, Err: sserrors.ErrUnauthorized})
		}, `level=INFO msg="request refused" endpoint=/v1/streaming.new account="" code=400112 status=401 message=Unauthorized`},
		{"request refused 503, path with an id", func(_ session.Hooks, h server.Hooks) {
			h.Refused(server.Refusal{Endpoint: "/v1/" + id, Account: session.Account{Name: "acme"}, SessionHash: server.ShortHash(id),
				Code: sserrors.CodeAPIConnectionError, Status: 503, Err: errors.New("cause with " + id)})
		}, `level=WARN msg="request refused" endpoint=/v1/[redacted] account=acme session=` + sha12(id) + ` code=400558 status=503 message="API connection error"`},
		{"socket not announced", func(_ session.Hooks, h server.Hooks) {
			h.AnnounceFailed(realtime.AnnounceFailure{SocketInfo: realtime.SocketInfo{Account: session.Account{Name: "acme"}, SessionHash: server.ShortHash(id)},
				Err: errors.New("redisrelay: publish " + id + ": connection refused")})
		}, `level=WARN msg="realtime socket not announced" account=acme session=` + sha12(id) + ` error="redisrelay: publish [redacted]: connection refused"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf syncBuffer
			logger := slog.New(handlers[0].new(&buf))
			tt.log(observe.SessionHooks(logger), observe.ServerHooks(logger))
			assert.Equal(t, tt.want, strings.TrimSuffix(buf.String(), "\n"))
			assert.NotContains(t, buf.String(), id)
		})
	}
}

// TestNilLoggerUsesDefault checks that a nil logger means slog.Default().
func TestNilLoggerUsesDefault(t *testing.T) {
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(handlers[0].new(&buf)))
	defer slog.SetDefault(old)
	observe.SessionHooks(nil).OnRefused(session.Account{Name: "acme"}, sserrors.CodeSessionFull)
	observe.ServerHooks(nil).SocketOpened(realtime.SocketInfo{Account: session.Account{Name: "acme"}})
	assert.Equal(t, `level=INFO msg="session refused" account=acme code=10014 message="Session full"
level=INFO msg="realtime socket opened" account=acme session=""
`, buf.String())
}
