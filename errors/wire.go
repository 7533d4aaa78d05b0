package errors

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SuccessCode is the code of the success envelope.
const SuccessCode Code = 100

// MaxBodyBytes is how much of a response body FromResponse and
// DecodeResponse read; the rest is ignored.
const MaxBodyBytes = 1 << 20

// maxMessageBytes caps a parsed message, so that a hostile server cannot
// make every log line that prints the error arbitrarily long.
const maxMessageBytes = 1024

// maxRetryAfter caps a parsed Retry-After.
const maxRetryAfter = 24 * time.Hour

type errorBody struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

type dataBody struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data"`
}

type tokenBody struct {
	Error *struct{} `json:"error"`
	Data  struct {
		Token string `json:"token"`
	} `json:"data"`
}

// marshal encodes v without HTML escaping (messages go out exactly as the
// seed writes them) and without the encoder's trailing newline.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// wireStatus returns the status an error is sent with: its own when it is
// an HTTP error status (400–599), 500 otherwise.
func wireStatus(status int) int {
	if status < 400 || status > 599 {
		return 500
	}
	return status
}

// retryAfterSeconds returns d in whole seconds, rounded up.
func retryAfterSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client is gone; nothing to report to
}

// Write sends err as a failure response: the HTTP status of the first
// *Error in err's chain, Content-Type application/json, a Retry-After header
// in whole seconds rounded up when its RetryAfter is positive, and the flat
// body {"code":10006,"message":"Session not found"} with no trailing newline.
//
// A status outside 400–599 is sent as 500. An error with no *Error in its
// chain, and nil, are sent as 500000/500 with the catalog's message: the
// plain error's text never reaches the client. An empty message is replaced
// by the catalog's message for the code, when it has one.
// Write is safe for concurrent use on different writers.
func Write(w http.ResponseWriter, err error) {
	e, ok := As(err)
	if !ok {
		e = ErrInternalServerError
	}
	msg := e.Message
	if msg == "" {
		if c, ok := Lookup(e.Code); ok {
			msg = c.Message
		}
	}
	body, _ := marshal(errorBody{Code: e.Code, Message: msg}) // cannot fail: an int and a string
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(e.RetryAfter), 10))
	}
	writeJSON(w, wireStatus(e.Status), body)
}

// WriteData sends the success envelope with HTTP 200:
// {"code":100,"message":"success","data":<data as JSON>}; a nil data is
// sent as null. When data cannot be encoded as JSON it sends
// ErrInternalServerError instead (see Write), so a client never sees half a
// body.
func WriteData(w http.ResponseWriter, data any) {
	body, err := marshal(dataBody{Code: SuccessCode, Message: "success", Data: data})
	if err != nil {
		Write(w, ErrInternalServerError.WithCause(err))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// WriteToken sends the create_token envelope with HTTP 200:
// {"error":null,"data":{"token":"<token>"}}.
func WriteToken(w http.ResponseWriter, token string) {
	var b tokenBody
	b.Data.Token = token
	body, _ := marshal(b) // cannot fail: a nil pointer and a string
	writeJSON(w, http.StatusOK, body)
}

// fallbackCode is the code Parse gives a failure response that carries no
// usable code, chosen from its HTTP status (the rule is in the package doc).
func fallbackCode(status int) Code {
	switch {
	case status == http.StatusUnauthorized:
		return CodeUnauthorized
	case status == http.StatusForbidden:
		return CodeForbidden
	case status == http.StatusNotFound:
		return CodeResourceNotFound
	case status == http.StatusRequestTimeout, status == http.StatusGatewayTimeout:
		return CodeRequestTimeout
	case status == http.StatusTooManyRequests:
		return CodeMovioAPIExceedRateLimit
	case status == http.StatusBadGateway, status == http.StatusServiceUnavailable:
		return CodeAPIConnectionError
	case status >= 400 && status <= 499:
		return CodeUnknownError
	}
	return CodeInternalServerError
}

// parseCode reads a JSON code: an integral number, or a string holding one,
// in 1..MaxInt32.
func parseCode(raw json.RawMessage) (Code, bool) {
	raw = bytes.TrimSpace(raw)
	s := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || f < 1 || f > math.MaxInt32 {
			return 0, false
		}
		n = int64(f)
	}
	if n < 1 || n > math.MaxInt32 {
		return 0, false
	}
	return Code(n), true
}

// truncate cuts s to at most max bytes on a rune boundary.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// fields decodes a JSON object's members, or returns nil.
func fields(body []byte) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	return m
}

// Parse turns a failure response of a HeyGen-style server (its HTTP status
// and body) into a typed error. It never panics and never returns nil.
//
// It reads the flat body {"code":…,"message":…} and also the nested
// {"error":{"code":…,"message":…}}; other fields are ignored. The code may
// be a JSON number or a string holding one. It matches on the code alone: a
// received message (lower-case variants included) is kept as it is, up to
// 1024 bytes, and a missing one is the catalog's message. A code not in the
// catalog is kept.
//
// A body that is empty, not JSON, or without a usable code (absent, not an
// integer in 1..2^31-1, or the success code 100) gets a code from the HTTP
// status: 401 → 400112, 403 → 400562, 404 → 40051, 408 and 504 → 400106,
// 429 → 400140, 502 and 503 → 400558, any other 4xx → 40099, anything else
// → 500000.
//
// The result's Status is the HTTP status when it is 400–599; otherwise the
// catalog status of the code, or 500 for a code not in the catalog.
func Parse(status int, body []byte) *Error {
	var (
		code    Code
		hasCode bool
		msg     string
	)
	if m := fields(body); m != nil {
		if _, ok := m["code"]; !ok {
			if nested := fields(m["error"]); nested != nil {
				m = nested
			}
		}
		if raw, ok := m["code"]; ok {
			code, hasCode = parseCode(raw)
			hasCode = hasCode && code != SuccessCode
		}
		if raw, ok := m["message"]; ok {
			_ = json.Unmarshal(raw, &msg) // not a string: no message
			msg = truncate(msg, maxMessageBytes)
		}
	}
	if !hasCode {
		code = fallbackCode(status)
	}
	known, inCatalog := Lookup(code)
	st := status
	if st < 400 || st > 599 {
		st = 500
		if inCatalog {
			st = known.Status
		}
	}
	if msg == "" {
		switch {
		case inCatalog:
			msg = known.Message
		case http.StatusText(st) != "":
			msg = http.StatusText(st)
		default:
			msg = "Unknown error"
		}
	}
	return New(code, st, msg)
}

// parseRetryAfter reads a Retry-After header: delay-seconds, or an
// HTTP-date measured from the response's Date header (without a Date header
// a date is ignored, so that the result does not depend on the local
// clock). The result is capped at 24 hours; 0 means none.
func parseRetryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" { // delay-seconds
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n >= uint64(maxRetryAfter/time.Second) { // err: too many digits
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	now, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return 0
	}
	return min(max(at.Sub(now), 0), maxRetryAfter)
}

// readBody reads at most MaxBodyBytes of resp.Body.
func readBody(resp *http.Response) ([]byte, error) {
	if resp.Body == nil {
		return nil, nil
	}
	return io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
}

// fromResponse is FromResponse on a body already read.
func fromResponse(resp *http.Response, body []byte, readErr error) *Error {
	e := Parse(resp.StatusCode, body)
	if d := parseRetryAfter(resp.Header); d > 0 {
		e.RetryAfter = d // e is new, not shared
	}
	if readErr != nil {
		e.cause = readErr
	}
	return e
}

// FromResponse turns a failure response into a typed error, as Parse does
// with its status and body, and sets RetryAfter from its Retry-After header
// (delay-seconds, or an HTTP-date measured from the Date header; capped at
// 24 hours). It reads at most MaxBodyBytes of the body and does not close
// it. A read error becomes the result's cause. A nil response gives a
// 500000/500 error. It never returns nil.
func FromResponse(resp *http.Response) *Error {
	if resp == nil {
		return Parse(0, nil)
	}
	body, err := readBody(resp)
	return fromResponse(resp, body, err)
}

// DecodeData decodes a success envelope, {"code":100,"message":…,"data":…}
// or the create_token one {"error":null,"data":…}, storing data in v (as
// json.Unmarshal does; a nil v or a null data leaves v alone).
//
// A failure body (a code other than 100, or a non-null "error") returns the
// typed error Parse gives it, with the code's catalog status. A body that is
// not such an envelope, or data that does not decode into v, returns an
// *Error 500000/500 whose cause says why. It never panics.
func DecodeData(body []byte, v any) error {
	m := fields(body)
	if m == nil {
		return ErrInternalServerError.WithCause(&decodeError{"response body is not a JSON object"})
	}
	if raw, ok := m["code"]; ok {
		if c, ok := parseCode(raw); !ok || c != SuccessCode {
			return Parse(0, body)
		}
	} else if raw, ok := m["error"]; ok && string(bytes.TrimSpace(raw)) != "null" {
		return Parse(0, body)
	} else if _, ok := m["data"]; !ok {
		return ErrInternalServerError.WithCause(&decodeError{"response body has neither code nor data"})
	}
	data, ok := m["data"]
	if v == nil || !ok || string(bytes.TrimSpace(data)) == "null" {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return ErrInternalServerError.WithCause(err)
	}
	return nil
}

// DecodeResponse reads at most MaxBodyBytes of resp's body (without closing
// it) and decodes it: a 2xx response with DecodeData into v, any other with
// FromResponse. A nil response returns a 500000/500 error.
func DecodeResponse(resp *http.Response, v any) error {
	if resp == nil {
		return Parse(0, nil)
	}
	body, err := readBody(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fromResponse(resp, body, err)
	}
	if err != nil {
		return ErrInternalServerError.WithCause(err)
	}
	return DecodeData(body, v)
}

// decodeError is the cause of a response that is not an envelope.
type decodeError struct{ reason string }

func (e *decodeError) Error() string { return "streamsession: " + e.reason }
