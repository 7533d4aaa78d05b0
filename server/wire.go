package server

import (
	"net/http"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
)

// Errors the server answers with that are not tied to a session.
var (
	// errNotFound answers a path the server does not serve.
	errNotFound = sserrors.ErrResourceNotFound
	// errMethodNotAllowed answers a known path called with the wrong method.
	errMethodNotAllowed = sserrors.ErrResourceNotFound.WithStatus(http.StatusMethodNotAllowed)
	// errForbiddenOrigin refuses a realtime socket from an origin not allowed.
	errForbiddenOrigin = sserrors.ErrForbidden
	// errBodyTooLarge answers a body larger than Config.MaxBodyBytes.
	errBodyTooLarge = sserrors.ErrInvalidParameter.WithStatus(http.StatusRequestEntityTooLarge)
	// errUnavailable answers a backend failure (a token store, shutdown).
	errUnavailable = sserrors.ErrAPIConnectionError.WithStatus(http.StatusServiceUnavailable).WithRetryAfter(time.Second)
	// errTooManyTokens refuses Mint for an account holding its bound of
	// outstanding bearer tokens (see TooManyTokens for its Retry-After).
	errTooManyTokens = sserrors.ErrMovioAPIExceedRateLimit
)

func writeError(w http.ResponseWriter, err error) { sserrors.Write(w, err) }

func writeData(w http.ResponseWriter, data any) { sserrors.WriteData(w, data) }

func writeToken(w http.ResponseWriter, token string) { sserrors.WriteToken(w, token) }
