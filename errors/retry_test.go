package errors_test

import (
	"context"
	stderrors "errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	sserrors "github.com/streamsession/streamsession/errors"
)

func TestRetryable(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		retry bool
		after time.Duration
	}{
		{"nil", nil, false, 0},
		{"session full, default", sserrors.ErrSessionFull, true, 5 * time.Second},
		{"session full, Retry-After", sserrors.ErrSessionFull.WithRetryAfter(12 * time.Second), true, 12 * time.Second},
		{"session full, wrapped", fmt.Errorf("new: %w", sserrors.ErrSessionFull.WithRetryAfter(2*time.Second)), true, 2 * time.Second},
		{"session full, parsed", sserrors.Parse(429, []byte(`{"code":10014,"message":"session full"}`)), true, 5 * time.Second},
		{"concurrent limit", sserrors.ErrConcurrentLimitReached, false, 0},
		{"concurrent limit with Retry-After", sserrors.ErrConcurrentLimitReached.WithRetryAfter(time.Second), false, 0},
		{"trial limit", sserrors.ErrTrialLimitReached, false, 0},
		{"internal", sserrors.ErrInternalServerError, true, time.Second},
		{"request timeout", sserrors.ErrRequestTimeout, true, time.Second},
		{"api connection", sserrors.ErrAPIConnectionError.WithStatus(503).WithRetryAfter(3 * time.Second), true, 3 * time.Second},
		{"retriable job", sserrors.ErrRetriableJobError, true, time.Second},
		{"tts rate limit", sserrors.ErrTTSTooManyRequestErr, true, 5 * time.Second},
		{"rate limit", sserrors.ErrMovioAPIExceedRateLimit, true, 5 * time.Second},
		{"quota", sserrors.ErrQuotaLimit, false, 0},
		{"missing params", sserrors.ErrMissingParams, false, 0},
		{"invalid parameter", sserrors.ErrInvalidParameter, false, 0},
		{"invalid url", sserrors.InvalidURL("x"), false, 0},
		{"unauthorized", sserrors.ErrUnauthorized, false, 0},
		{"not found", sserrors.ErrSessionNotFound, false, 0},
		{"state", sserrors.ErrSessionStateClosed, false, 0},
		{"avatar not allowed", sserrors.ErrAvatarNotAllowed, false, 0},
		{"third party (not listed)", sserrors.ErrThirdPartyError, false, 0},
		{"unknown code, 503", sserrors.Parse(503, []byte(`{"code":777}`)), true, time.Second},
		{"unknown code, 504 with Retry-After", sserrors.New(777, 504, "x").WithRetryAfter(9 * time.Second), true, 9 * time.Second},
		{"unknown code, 400", sserrors.Parse(400, []byte(`{"code":777}`)), false, 0},
		{"unknown code, 429", sserrors.Parse(429, []byte(`{"code":777}`)), false, 0},
		{"empty 502", sserrors.Parse(502, nil), true, time.Second},
		{"plain error", io.ErrUnexpectedEOF, true, time.Second},
		{"canceled", context.Canceled, false, 0},
		{"deadline in an internal error", sserrors.ErrInternalServerError.WithCause(fmt.Errorf("x: %w", context.DeadlineExceeded)), false, 0},
		{"joined with canceled", stderrors.Join(sserrors.ErrSessionFull, context.Canceled), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			retry, after := sserrors.Retryable(tt.err)
			assert.Equal(t, tt.retry, retry)
			assert.Equal(t, tt.after, after)
		})
	}
}

// TestRetryableCatalog pins which catalog codes are retried: exactly the
// ones the doc comment lists.
func TestRetryableCatalog(t *testing.T) {
	want := map[sserrors.Code]bool{10014: true, 400140: true, 400701: true, 500000: true, 400106: true, 400558: true, 40062: true}
	for e := range sserrors.Entries() {
		retry, _ := sserrors.Retryable(e.Err)
		assert.Equal(t, want[e.Code], retry, "code %d", e.Code)
	}
}
