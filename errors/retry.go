package errors

import (
	"context"
	stderrors "errors"
	"time"
)

// Default delays of Retryable, used when an error carries no RetryAfter.
const (
	// DefaultSessionFullDelay is the delay for 10014 Session full.
	DefaultSessionFullDelay = 5 * time.Second
	// DefaultRateLimitDelay is the delay for the rate-limit codes 400140
	// and 400701.
	DefaultRateLimitDelay = 5 * time.Second
	// DefaultTransientDelay is the delay for the other transient codes
	// (500000, 400106, 400558, 40062), for a plain error and for an unknown
	// code sent with 502, 503 or 504.
	DefaultTransientDelay = 1 * time.Second
)

// Retryable tells a client whether the request that failed with err is
// worth sending again, and after how long. The delay is err's RetryAfter
// (from the Retry-After header, see FromResponse) when positive, else the
// default of its class:
//
//   - 10014 Session full (the service is at capacity for now): retry,
//     default DefaultSessionFullDelay (5 s).
//   - 400140 and 400701 (rate limits): retry, default DefaultRateLimitDelay
//     (5 s).
//   - 500000 Internal server error, 400106 Request timeout, 400558 API
//     connection error, 40062 Retriable job error: retry, default
//     DefaultTransientDelay (1 s).
//   - A code not in the catalog sent with HTTP 502, 503 or 504: retry,
//     default DefaultTransientDelay.
//   - A plain error (no *Error in its chain, e.g. a network failure) counts
//     as 500000: retry, default DefaultTransientDelay.
//   - nil, and any error whose chain holds context.Canceled or
//     context.DeadlineExceeded (the caller gave up): no.
//   - Everything else: no. That includes 10007 Concurrent limit reached and
//     10015 Trial API limit reached (they last until the caller's own
//     sessions close or the month turns, so retrying soon is useless), the
//     other quota rows, authentication, permission, not-found, session-state
//     and validation errors.
//
// When it returns false the delay is 0. It is safe for concurrent use.
func Retryable(err error) (retry bool, after time.Duration) {
	if err == nil || stderrors.Is(err, context.Canceled) || stderrors.Is(err, context.DeadlineExceeded) {
		return false, 0
	}
	e, ok := As(err)
	if !ok {
		return true, DefaultTransientDelay
	}
	var def time.Duration
	switch e.Code {
	case CodeSessionFull:
		def = DefaultSessionFullDelay
	case CodeMovioAPIExceedRateLimit, CodeTTSTooManyRequestErr:
		def = DefaultRateLimitDelay
	case CodeInternalServerError, CodeRequestTimeout, CodeAPIConnectionError, CodeRetriableJobError:
		def = DefaultTransientDelay
	default:
		if _, known := Lookup(e.Code); known {
			return false, 0
		}
		switch e.Status {
		case 502, 503, 504:
			def = DefaultTransientDelay
		default:
			return false, 0
		}
	}
	if e.RetryAfter > 0 {
		return true, e.RetryAfter
	}
	return true, def
}
