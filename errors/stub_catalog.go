package errors

// TEMPORARY hand-written subset; replaced by the generated catalog.

const (
	CodeSessionStateNew         Code = 10001
	CodeSessionStateConnecting  Code = 10002
	CodeSessionStateConnected   Code = 10003
	CodeSessionStateClosing     Code = 10004
	CodeSessionStateClosed      Code = 10005
	CodeSessionNotFound         Code = 10006
	CodeConcurrentLimitReached  Code = 10007
	CodeStreamingAvatarNotFound Code = 10012
	CodeAvatarNotAllowed        Code = 10013
	CodeSessionFull             Code = 10014
	CodeTrialLimitReached       Code = 10015
	CodeUnauthorized            Code = 400112
	CodeMissingParams           Code = 40001
	CodeInvalidParameter        Code = 400175
	CodeAPIConnectionError      Code = 400558
	CodeInternalServerError     Code = 500000
)

var (
	ErrSessionStateNew         = New(CodeSessionStateNew, 400, "Session state wrong: new")
	ErrSessionStateConnecting  = New(CodeSessionStateConnecting, 400, "Session state wrong: connecting")
	ErrSessionStateConnected   = New(CodeSessionStateConnected, 400, "Session state wrong: connected")
	ErrSessionStateClosing     = New(CodeSessionStateClosing, 400, "Session state wrong: closing")
	ErrSessionStateClosed      = New(CodeSessionStateClosed, 400, "Session state wrong: closed")
	ErrSessionNotFound         = New(CodeSessionNotFound, 404, "Session not found")
	ErrConcurrentLimitReached  = New(CodeConcurrentLimitReached, 429, "Concurrent limit reached")
	ErrStreamingAvatarNotFound = New(CodeStreamingAvatarNotFound, 404, "Avatar not found")
	ErrAvatarNotAllowed        = New(CodeAvatarNotAllowed, 403, "Avatar not allowed")
	ErrSessionFull             = New(CodeSessionFull, 429, "Session full")
	ErrTrialLimitReached       = New(CodeTrialLimitReached, 429, "Trial API limit reached")
	ErrUnauthorized            = New(CodeUnauthorized, 401, "Unauthorized")
	ErrMissingParams           = New(CodeMissingParams, 400, "Missing required input parameters")
	ErrInvalidParameter        = New(CodeInvalidParameter, 400, "Invalid parameter")
	ErrAPIConnectionError      = New(CodeAPIConnectionError, 400, "API connection error")
	ErrInternalServerError     = New(CodeInternalServerError, 500, "Internal server error")
)

// SessionState returns the 10001–10005 error for a session whose current
// state has the given wire name ("new", "connecting", "connected",
// "closing", "closed"). It never allocates.
func SessionState(state string) *Error {
	switch state {
	case "new":
		return ErrSessionStateNew
	case "connecting":
		return ErrSessionStateConnecting
	case "connected":
		return ErrSessionStateConnected
	case "closing":
		return ErrSessionStateClosing
	case "closed":
		return ErrSessionStateClosed
	}
	return ErrInternalServerError
}

// CodeOf returns the code of the first *Error in err's chain, 500000 for any
// other non-nil error and 0 for nil.
func CodeOf(err error) Code {
	if err == nil {
		return 0
	}
	if e, ok := As(err); ok {
		return e.Code
	}
	return CodeInternalServerError
}

// StatusOf returns the HTTP status of err (500 for a plain error, 200 for nil).
func StatusOf(err error) int {
	if err == nil {
		return 200
	}
	if e, ok := As(err); ok {
		return e.Status
	}
	return 500
}
