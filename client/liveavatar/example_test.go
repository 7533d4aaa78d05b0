package liveavatar_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamsession/streamsession/client/liveavatar"
	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	la "github.com/streamsession/streamsession/server/liveavatar"
	"github.com/streamsession/streamsession/session"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serve runs a LiveAvatar surface on loopback and returns its URL and a
// function that stops it.
func serve() (string, func()) {
	lim := limits.NewMemory(limits.MemoryConfig{})
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars})
	if err != nil {
		panic(err)
	}
	accounts := server.AccountsByKey{
		"key-acme": {Name: "acme", Plan: limits.Plan{Name: "pro", MaxConcurrent: 1}},
	}
	h, err := la.New(la.Config{Manager: mgr, Accounts: accounts})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	return srv.URL, func() {
		ctx := context.Background()
		mgr.Close(ctx)
		h.Shutdown(ctx)
		srv.Close()
		lim.Close()
	}
}

// A whole LITE session: mint, start, connect, speak, stop.
func Example() {
	base, stop := serve()
	defer stop()
	ctx := context.Background()

	c := liveavatar.New(base, liveavatar.WithAPIKey("key-acme"))
	tok, err := c.CreateToken(ctx, liveavatar.TokenRequest{Mode: "LITE", AvatarID: "Wayne_20240711"})
	if err != nil {
		panic(err)
	}
	s := c.Session(tok.SessionToken)
	started, err := s.Start(ctx)
	if err != nil {
		panic(err)
	}
	lite, err := s.Connect(ctx, started.WSURL)
	if err != nil {
		panic(err)
	}
	defer lite.Close()
	fmt.Println(<-lite.Events())
	fmt.Println(<-lite.Events())

	pcm := make([]byte, liveavatar.BytesPerSecond/10) // 100 ms of silence
	if err := lite.Speak("hello", pcm); err != nil {
		panic(err)
	}
	for _, want := range []string{"agent.speak_started", "agent.speak_ended"} {
		e := <-lite.Events()
		fmt.Println(e.Type == want, e.EventID)
	}
	if err := s.Stop(ctx, "USER_CLOSED"); err != nil {
		panic(err)
	}
	for e := range lite.Events() {
		fmt.Println(e.Type, e.State, e.Reason)
	}
	// Output:
	// {session.state_updated connecting   <nil> <nil>}
	// {session.state_updated connected   <nil> <nil>}
	// true hello
	// true hello
	// session.state_updated closing USER_CLOSED
	// session.state_updated closed USER_CLOSED
}

func TestErrors(t *testing.T) {
	base, stop := serve()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := liveavatar.New(base, liveavatar.WithAPIKey("key-acme"))

	_, err := c.CreateToken(ctx, liveavatar.TokenRequest{Mode: "LITE"})
	var v *liveavatar.ValidationError
	require.ErrorAs(t, err, &v)
	assert.Equal(t, []liveavatar.FieldError{{Loc: []any{"body", "avatar_id"}, Msg: "Field required", Type: "missing"}}, v.Detail)

	tok, err := c.CreateToken(ctx, liveavatar.TokenRequest{Mode: "LITE", AvatarID: "Wayne_20240711"})
	require.NoError(t, err)
	_, err = c.CreateToken(ctx, liveavatar.TokenRequest{Mode: "LITE", AvatarID: "Wayne_20240711"})
	e, ok := sserrors.As(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, sserrors.Code(4003), e.Code)
	assert.Equal(t, http.StatusForbidden, e.Status)
	assert.Equal(t, "Session concurrency limit reached", e.Message)

	s := c.Session(tok.SessionToken)
	assert.ErrorIs(t, s.KeepAlive(ctx), sserrors.ErrSessionStateNew)
	_, err = s.Start(ctx)
	require.NoError(t, err)
	_, err = s.Start(ctx)
	assert.ErrorIs(t, err, sserrors.ErrSessionStateConnecting)

	p, err := c.List(ctx, "active", 0, 0)
	require.NoError(t, err)
	require.Equal(t, 1, p.Count)
	assert.Equal(t, tok.SessionID, p.Results[0].ID)
	got, err := c.Get(ctx, tok.SessionID)
	require.NoError(t, err)
	assert.Equal(t, "connecting", got.State)

	require.NoError(t, c.Stop(ctx, tok.SessionID, "USER_DISCONNECTED"))
	require.NoError(t, s.Stop(ctx, ""), "a stop after the session closed succeeds")
	got, err = s.Get(ctx, tok.SessionID)
	require.NoError(t, err)
	require.NotNil(t, got.CloseReason)
	assert.Equal(t, "USER_DISCONNECTED", *got.CloseReason)
	require.NotNil(t, got.Mode, "the token says its session's mode")
	assert.Equal(t, "LITE", *got.Mode)
	require.NotNil(t, got.IsSandbox)
	assert.False(t, *got.IsSandbox)
	assert.True(t, errors.Is(c.KeepAlive(ctx, tok.SessionID), sserrors.ErrSessionStateClosed))
}
