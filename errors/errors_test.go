package errors_test

import (
	stderrors "errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
)

func TestErrorSentence(t *testing.T) {
	tests := []struct {
		name string
		err  *sserrors.Error
		want string
	}{
		{"plain", sserrors.ErrSessionNotFound, "streamsession: Session not found (code 10006)"},
		{"cause", sserrors.ErrAPIConnectionError.WithCause(io.ErrUnexpectedEOF), "streamsession: API connection error (code 400558): unexpected EOF"},
		{"nil", nil, "streamsession: <nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.err.Error())
		})
	}
}

func TestIsComparesCodesThroughWrapping(t *testing.T) {
	wrapped := fmt.Errorf("stop: %w", fmt.Errorf("lookup: %w", sserrors.ErrSessionNotFound))
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"same value", sserrors.ErrSessionNotFound, sserrors.ErrSessionNotFound, true},
		{"wrapped twice", wrapped, sserrors.ErrSessionNotFound, true},
		{"wrapped, other code", wrapped, sserrors.ErrSessionFull, false},
		{"joined", stderrors.Join(io.EOF, sserrors.ErrSessionFull), sserrors.ErrSessionFull, true},
		{"other message and status, same code", sserrors.New(10006, 500, "session not found"), sserrors.ErrSessionNotFound, true},
		{"copy with cause", fmt.Errorf("x: %w", sserrors.ErrSessionFull.WithCause(io.EOF)), sserrors.ErrSessionFull, true},
		{"cause reachable", sserrors.ErrSessionFull.WithCause(io.EOF), io.EOF, true},
		{"context value is its general code", sserrors.VoiceNotFound("v"), sserrors.ErrVoiceNotFound, true},
		{"plain error", io.EOF, sserrors.ErrInternalServerError, false},
		{"nil target", sserrors.ErrSessionFull, (*sserrors.Error)(nil), false},
		{"same message, other code", sserrors.ErrStreamingAvatarNotFound, sserrors.ErrAvatarNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, stderrors.Is(tt.err, tt.target))
		})
	}
}

func TestWithReturnsCopies(t *testing.T) {
	shared := sserrors.ErrSessionFull
	before := *shared
	c1 := shared.WithCause(io.EOF)
	c2 := shared.WithStatus(503)
	c3 := shared.WithRetryAfter(7 * time.Second)
	c4 := c3.WithStatus(500).WithCause(io.ErrClosedPipe)

	assert.Equal(t, before, *shared, "shared value mutated")
	for _, c := range []*sserrors.Error{c1, c2, c3, c4} {
		assert.NotSame(t, shared, c)
		assert.Equal(t, shared.Code, c.Code)
		assert.Equal(t, shared.Message, c.Message)
	}
	assert.Equal(t, io.EOF, c1.Unwrap())
	assert.Equal(t, 429, c1.Status)
	assert.Equal(t, 503, c2.Status)
	assert.Nil(t, c2.Unwrap())
	assert.Equal(t, 7*time.Second, c3.RetryAfter)
	assert.Equal(t, 429, c3.Status, "c4 must not change c3")
	assert.Nil(t, c3.Unwrap(), "c4 must not change c3")
	assert.Equal(t, 500, c4.Status)
	assert.Equal(t, 7*time.Second, c4.RetryAfter)
	assert.Equal(t, io.ErrClosedPipe, c4.Unwrap())
}

func TestWithIsRaceFree(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				e := sserrors.ErrSessionFull.WithRetryAfter(time.Duration(i*j) * time.Millisecond).WithCause(io.EOF)
				_ = e.Error()
				_ = stderrors.Is(e, sserrors.ErrSessionFull)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, time.Duration(0), sserrors.ErrSessionFull.RetryAfter)
	assert.Nil(t, sserrors.ErrSessionFull.Unwrap())
}

func TestNilErrorNeverPanics(t *testing.T) {
	var e *sserrors.Error
	assert.Nil(t, e.Unwrap())
	assert.False(t, e.Is(sserrors.ErrSessionFull))
	c := e.WithStatus(503)
	require.NotNil(t, c)
	assert.Equal(t, sserrors.CodeInternalServerError, c.Code)
	assert.Equal(t, 503, c.Status)
	assert.Equal(t, 500, sserrors.ErrInternalServerError.Status, "shared value mutated")
}

func TestCodeOfStatusOf(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		code   sserrors.Code
		status int
	}{
		{"nil", nil, 0, 200},
		{"plain", io.EOF, 500000, 500},
		{"catalog", sserrors.ErrSessionNotFound, 10006, 404},
		{"wrapped", fmt.Errorf("a: %w", sserrors.ErrTrialLimitReached), 10015, 429},
		{"copy", sserrors.ErrAPIConnectionError.WithStatus(503), 400558, 503},
		{"unknown code", sserrors.New(777, 418, "teapot"), 777, 418},
		{"typed nil in chain", fmt.Errorf("a: %w", (*sserrors.Error)(nil)), 500000, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.code, sserrors.CodeOf(tt.err))
			assert.Equal(t, tt.status, sserrors.StatusOf(tt.err))
		})
	}
}
