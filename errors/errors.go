package errors

import (
	stderrors "errors"
	"fmt"
	"time"
)

// Code is a numeric API error code from the catalog (10006, 400112, ...).
// A code not in the catalog is still a valid Code (Parse keeps the codes
// servers send). Codes are plain values, safe to copy and share.
type Code int

// Error is the one error type of streamsession: a catalog code, the HTTP
// status it is sent with, the message clients see and an optional cause.
//
// Values returned by this package (the Err* variables, Lookup, SessionState)
// are shared: never modify one; use the With* methods, which return a copy.
// An *Error is safe for concurrent use because it is never mutated after
// construction.
type Error struct {
	Code    Code
	Status  int
	Message string
	// RetryAfter, when positive, is sent as a Retry-After header and tells
	// clients when a transient refusal is worth retrying.
	RetryAfter time.Duration

	cause error
}

// New returns an error with the given code, HTTP status and message.
func New(code Code, status int, message string) *Error {
	return &Error{Code: code, Status: status, Message: message}
}

// Error returns a sentence for logs, not the JSON body: the message, the
// code and the cause, if any. A nil *Error gives "streamsession: <nil>".
func (e *Error) Error() string {
	switch {
	case e == nil:
		return "streamsession: <nil>"
	case e.cause != nil:
		return fmt.Sprintf("streamsession: %s (code %d): %v", e.Message, e.Code, e.cause)
	}
	return fmt.Sprintf("streamsession: %s (code %d)", e.Message, e.Code)
}

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.cause
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ErrSessionNotFound) holds through any wrapping and whatever
// the message, status or cause.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && e != nil && t.Code == e.Code
}

// clone returns a copy of e; a nil e copies ErrInternalServerError, so that
// the With* methods never panic.
func (e *Error) clone() *Error {
	if e == nil {
		e = ErrInternalServerError
	}
	c := *e
	return &c
}

// WithCause returns a copy of e that wraps cause. The cause shows in
// Error() and errors.Is/As, never on the wire.
func (e *Error) WithCause(cause error) *Error {
	c := e.clone()
	c.cause = cause
	return c
}

// WithStatus returns a copy of e sent with another HTTP status.
func (e *Error) WithStatus(status int) *Error {
	c := e.clone()
	c.Status = status
	return c
}

// WithRetryAfter returns a copy of e that tells clients to retry after d.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	c := e.clone()
	c.RetryAfter = d
	return c
}

// As finds the first non-nil *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	if stderrors.As(err, &e) && e != nil {
		return e, true
	}
	return nil, false
}
