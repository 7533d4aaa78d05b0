package liveavatar

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
)

// Codes of LiveAvatar's envelope.
const (
	// CodeSuccess is the code of every successful answer (the web SDK
	// throws on any other; LiveAvatar's OpenAPI default of 100 is not what
	// the service sends).
	CodeSuccess = 1000
	// CodeConcurrencyLimit refuses a token when the account holds its
	// plan's maximum of sessions (HTTP 403), as LiveAvatar does.
	CodeConcurrencyLimit = 4003
	// CodeFullModeUnsupported refuses the start of a FULL session (HTTP
	// 501): FULL mode needs a LiveKit server, which this service does not
	// run. The code is ours.
	CodeFullModeUnsupported sserrors.Code = 4501
)

var (
	errConcurrency     = sserrors.New(CodeConcurrencyLimit, http.StatusForbidden, "Session concurrency limit reached")
	errFullUnsupported = sserrors.New(CodeFullModeUnsupported, http.StatusNotImplemented,
		"FULL mode needs a LiveKit server, which this service does not run; mint a LITE token")
	errNotFound         = sserrors.ErrResourceNotFound
	errMethodNotAllowed = sserrors.ErrResourceNotFound.WithStatus(http.StatusMethodNotAllowed)
	errBodyTooLarge     = sserrors.ErrInvalidParameter.WithStatus(http.StatusRequestEntityTooLarge)
)

// envelope is LiveAvatar's answer on every endpoint.
type envelope struct {
	Code    int    `json:"code"`
	Data    any    `json:"data"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"code":500000,"data":null,"message":"Internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// writeSuccess answers data in the success envelope with status (200, or
// 201 for start).
func writeSuccess(w http.ResponseWriter, status int, data any) {
	writeJSON(w, status, envelope{Code: CodeSuccess, Data: data, Message: "Success"})
}

// translate turns an error of the engine into the error this surface
// answers: plan concurrency (10007) becomes 403/4003; any error without a
// catalog code becomes 500000.
func translate(err error) *sserrors.Error {
	e, ok := sserrors.As(err)
	switch {
	case !ok:
		return sserrors.ErrInternalServerError.WithCause(err)
	case e.Code == sserrors.CodeConcurrentLimitReached:
		return errConcurrency.WithCause(err)
	}
	return e
}

// writeError answers err: a validation failure in FastAPI's 422 shape,
// anything else in the envelope with the status and code of translate, and
// a Retry-After when the error has one.
func writeError(w http.ResponseWriter, err error) {
	var v *validationError
	if errors.As(err, &v) {
		writeJSON(w, http.StatusUnprocessableEntity, v)
		return
	}
	e := translate(err)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, e.Status, envelope{Code: int(e.Code), Data: nil, Message: e.Message})
}

// validationError is a 422 answer: FastAPI's {"detail":[…]}.
type validationError struct {
	Detail []fieldError `json:"detail"`
}

// fieldError is one entry of a 422's detail.
type fieldError struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

func (v *validationError) Error() string {
	if len(v.Detail) == 0 {
		return "liveavatar: invalid request"
	}
	return "liveavatar: invalid request: " + v.Detail[0].Msg
}

// add records one failure at loc.
func (v *validationError) add(typ, msg string, loc ...any) {
	v.Detail = append(v.Detail, fieldError{Loc: loc, Msg: msg, Type: typ})
}

// err returns v when it holds a failure, else nil.
func (v *validationError) err() error {
	if len(v.Detail) == 0 {
		return nil
	}
	return v
}
