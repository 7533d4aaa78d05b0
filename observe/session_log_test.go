package observe_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/session"
)

var testAvatars = session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}

// recordingLimiter is the in-memory limiter, recording every session id it
// is asked about, with a switch that makes Acquire fail as an unreachable
// backend would, with an error that names the session (as a careless
// backend's might): the log must not show it.
type recordingLimiter struct {
	*limits.Memory
	mu   sync.Mutex
	ids  []string
	down bool
}

func (l *recordingLimiter) Acquire(ctx context.Context, r limits.Request) (limits.Decision, error) {
	l.mu.Lock()
	l.ids = append(l.ids, r.SessionID)
	down := l.down
	l.mu.Unlock()
	if down {
		return limits.Decision{}, limits.ErrUnavailable.WithCause(errors.New("backend down while acquiring " + r.SessionID))
	}
	return l.Memory.Acquire(ctx, r)
}

func (l *recordingLimiter) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
}

func (l *recordingLimiter) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ids...)
}

// line is one expected log line.
type line struct {
	level slog.Level
	msg   string
	attrs []slog.Attr
}

// render writes the expected lines through a handler of the same kind as
// the one under test, so the comparison is of whole lines, byte for byte.
func render(newHandler func(*syncBuffer) slog.Handler, lines []line) string {
	var buf syncBuffer
	h := newHandler(&buf)
	for _, l := range lines {
		r := slog.NewRecord(time.Time{}, l.level, l.msg, 0)
		r.AddAttrs(l.attrs...)
		if err := h.Handle(context.Background(), r); err != nil {
			panic(err)
		}
	}
	return buf.String()
}

func transition(account, id, from, to string, epoch uint64, reason string) line {
	return line{slog.LevelInfo, observe.MsgTransition, []slog.Attr{
		slog.String("account", account), slog.String("session", sha12(id)),
		slog.String("from", from), slog.String("to", to),
		slog.Uint64("epoch", epoch), slog.String("reason", reason),
	}}
}

func refused(level slog.Level, account string, code int, message string) line {
	return line{level, observe.MsgSessionRefused, []slog.Attr{
		slog.String("account", account), slog.Int("code", code), slog.String("message", message),
	}}
}

// TestSessionLog runs a whole session, three refusals and a limiter
// outage through a real Manager and checks the exact log, in both formats,
// then that no session id the run produced appears in it.
func TestSessionLog(t *testing.T) {
	for _, hd := range handlers {
		t.Run(hd.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				var buf syncBuffer
				logger := slog.New(hd.new(&buf))
				lim := &recordingLimiter{Memory: limits.NewMemory(limits.MemoryConfig{})}
				defer lim.Close()
				const retention = time.Minute
				m, err := session.NewManager(session.Config{
					Limiter: lim, Avatars: testAvatars, Hooks: observe.SessionHooks(logger), Retention: retention,
				})
				require.NoError(t, err)
				defer m.Close(ctx)

				acme := session.Account{Name: "acme", Plan: limits.Plan{Name: "solo", MaxConcurrent: 1}}
				s, err := m.Create(ctx, acme, session.CreateOptions{})
				require.NoError(t, err)
				_, err = m.Create(ctx, acme, session.CreateOptions{})
				require.ErrorIs(t, err, sserrors.ErrConcurrentLimitReached)
				_, err = m.Create(ctx, acme, session.CreateOptions{AvatarID: "nobody"})
				require.ErrorIs(t, err, sserrors.ErrStreamingAvatarNotFound)
				lim.setDown(true)
				_, err = m.Create(ctx, session.Account{Name: "globex", Plan: limits.PaidPlan}, session.CreateOptions{})
				require.ErrorIs(t, err, limits.ErrUnavailable)
				require.ErrorContains(t, err, "backend down while acquiring", "the error the hook sees names the session")
				lim.setDown(false)
				_, err = m.Start(ctx, "acme", s.ID)
				require.NoError(t, err)
				_, err = m.Join(ctx, "acme", s.ID)
				require.NoError(t, err)
				_, err = m.Stop(ctx, "acme", s.ID)
				require.NoError(t, err)
				time.Sleep(retention + time.Second) // the session is forgotten
				synctest.Wait()

				ids := lim.seen()
				require.Len(t, ids, 3, "acme's session, acme's refused one, globex's")
				// Under synctest no time passes during a call: every duration is 0.
				want := render(hd.new, []line{
					transition("acme", s.ID, "unknown", "new", 1, "none"),
					refused(slog.LevelInfo, "acme", 10007, "Concurrent limit reached"),
					refused(slog.LevelInfo, "acme", 10012, "Avatar not found"),
					{slog.LevelWarn, observe.MsgLimiterFailed, []slog.Attr{
						slog.String("op", "acquire"), slog.Duration("duration", 0), slog.Int("code", 400558),
						slog.String("error", "streamsession: API connection error (code 400558): backend down while acquiring [redacted]"),
					}},
					refused(slog.LevelWarn, "globex", 400558, "API connection error"),
					transition("acme", s.ID, "new", "connecting", 2, "none"),
					transition("acme", s.ID, "connecting", "connected", 3, "none"),
					transition("acme", s.ID, "connected", "closing", 4, "stop"),
					transition("acme", s.ID, "closing", "closed", 5, "stop"),
					transition("acme", s.ID, "closed", "unknown", 6, "stop"),
				})
				got := buf.String()
				assert.Equal(t, want, got)
				for _, id := range ids {
					assert.NotContains(t, got, id, "a raw session id")
					assert.NotContains(t, got, id[:16], "half a session id")
				}
				assert.Equal(t, 10, bytes.Count([]byte(got), []byte("\n")))
			})
		})
	}
}

// TestSubscribeKeepsLogOffTheTransitionPath checks the documented
// alternative: OnTransition given to Manager.Subscribe logs the same
// lines, in order, from the subscription's goroutine.
func TestSubscribeKeepsLogOffTheTransitionPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var buf syncBuffer
		logger := slog.New(handlers[1].new(&buf))
		lim := limits.NewMemory(limits.MemoryConfig{})
		defer lim.Close()
		hooks := observe.SessionHooks(logger)
		onTransition := hooks.OnTransition
		hooks.OnTransition = nil
		m, err := session.NewManager(session.Config{Limiter: lim, Avatars: testAvatars, Hooks: hooks})
		require.NoError(t, err)
		cancel := m.Subscribe(onTransition)
		defer cancel()
		s, err := m.Create(ctx, session.Account{Name: "acme", Plan: limits.PaidPlan}, session.CreateOptions{})
		require.NoError(t, err)
		_, err = m.Stop(ctx, "acme", s.ID)
		require.NoError(t, err)
		require.NoError(t, m.Close(ctx)) // delivers every pending event
		assert.Equal(t, render(handlers[1].new, []line{
			transition("acme", s.ID, "unknown", "new", 1, "none"),
			transition("acme", s.ID, "new", "closing", 2, "stop"),
			transition("acme", s.ID, "closing", "closed", 3, "stop"),
		}), buf.String())
	})
}

// closeFailingStore is a MemoryStore that cannot close sessions, with an
// error naming the session (as a careless backend's might).
type closeFailingStore struct{ *session.MemoryStore }

func (s closeFailingStore) Transition(ctx context.Context, account, id string, ch session.Change) (session.Record, fsm.State, error) {
	if ch.Event == fsm.EventClose {
		return session.Record{}, fsm.Unknown, errors.New("store down while closing " + id)
	}
	return s.MemoryStore.Transition(ctx, account, id, ch)
}

// TestBackgroundLog: a join timer whose close fails logs one line at Error,
// with the work's name and the redacted error, and no raw session id.
func TestBackgroundLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var buf syncBuffer
		logger := slog.New(handlers[1].new(&buf))
		lim := limits.NewMemory(limits.MemoryConfig{})
		defer lim.Close()
		hooks := observe.SessionHooks(logger)
		hooks.OnTransition = nil
		m, err := session.NewManager(session.Config{Limiter: lim, Avatars: testAvatars, Hooks: hooks,
			JoinTimeout: time.Minute, Store: closeFailingStore{session.NewMemoryStore(session.MemoryStoreConfig{})}})
		require.NoError(t, err)
		s, err := m.Create(ctx, session.Account{Name: "acme", Plan: limits.PaidPlan}, session.CreateOptions{})
		require.NoError(t, err)
		time.Sleep(time.Minute)
		synctest.Wait()
		got := buf.String()
		assert.Equal(t, render(handlers[1].new, []line{{slog.LevelError, observe.MsgBackgroundFailed, []slog.Attr{
			slog.String("op", "timer_close"), slog.Int("code", 500000),
			slog.String("error", "store down while closing [redacted]"),
		}}}), got)
		assert.NotContains(t, got, s.ID)
		_ = m.Close(ctx) // its shutdown close fails too: logged, not asserted here
	})
}
