package errors_test

import (
	stderrors "errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
)

func TestWriteGolden(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		header http.Header
		body   string
	}{
		{"not found", sserrors.ErrSessionNotFound, 404,
			http.Header{"Content-Type": {"application/json"}},
			`{"code":10006,"message":"Session not found"}`},
		{"wrapped state", fmt.Errorf("start: %w", sserrors.ErrSessionStateClosed), 400,
			http.Header{"Content-Type": {"application/json"}},
			`{"code":10005,"message":"Session state wrong: closed"}`},
		{"retry after rounds up", sserrors.ErrSessionFull.WithRetryAfter(1500 * time.Millisecond), 429,
			http.Header{"Content-Type": {"application/json"}, "Retry-After": {"2"}},
			`{"code":10014,"message":"Session full"}`},
		{"retry after whole", sserrors.ErrAPIConnectionError.WithStatus(503).WithRetryAfter(time.Second), 503,
			http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}},
			`{"code":400558,"message":"API connection error"}`},
		{"retry after tiny", sserrors.ErrSessionFull.WithRetryAfter(time.Nanosecond), 429,
			http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}},
			`{"code":10014,"message":"Session full"}`},
		{"plain error never leaks", stderrors.New("dial redis 10.0.0.3: password=hunter2"), 500,
			http.Header{"Content-Type": {"application/json"}},
			`{"code":500000,"message":"Internal server error"}`},
		{"cause never leaks", sserrors.ErrUnauthorized.WithCause(stderrors.New("key sk-123 unknown")), 401,
			http.Header{"Content-Type": {"application/json"}},
			`{"code":400112,"message":"Unauthorized"}`},
		{"nil", nil, 500,
			http.Header{"Content-Type": {"application/json"}},
			`{"code":500000,"message":"Internal server error"}`},
		{"status out of range", sserrors.New(10006, 200, "Session not found"), 500,
			http.Header{"Content-Type": {"application/json"}},
			`{"code":10006,"message":"Session not found"}`},
		{"empty message filled", sserrors.New(10007, 429, ""), 429,
			http.Header{"Content-Type": {"application/json"}},
			`{"code":10007,"message":"Concurrent limit reached"}`},
		{"no html escaping", sserrors.InvalidURL("http://a/?x=<1>&y=\"2\""), 400,
			http.Header{"Content-Type": {"application/json"}},
			`{"code":400175,"message":"not a valid URL: http://a/?x=<1>&y=\"2\""}`},
		{"seed text verbatim", sserrors.ErrUnknownError, 400,
			http.Header{"Content-Type": {"application/json"}},
			"{\"code\":40099,\"message\":\"Something is wrong, please contact [email\u00a0protected]\"}"}, // U+00A0 as in the seed
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			sserrors.Write(rec, tt.err)
			assert.Equal(t, tt.status, rec.Code)
			assert.Equal(t, tt.header, rec.Header())
			assert.Equal(t, tt.body, rec.Body.String())
		})
	}
}

func TestWriteEveryCatalogRow(t *testing.T) {
	for e := range sserrors.Entries() {
		rec := httptest.NewRecorder()
		sserrors.Write(rec, e.Err)
		assert.Equal(t, e.Status, rec.Code, "code %d", e.Code)
		got := sserrors.Parse(rec.Code, rec.Body.Bytes())
		assert.Equal(t, *e.Err, *got, "round trip of code %d", e.Code)
	}
}

func TestWriteData(t *testing.T) {
	type session struct {
		ID     string `json:"session_id"`
		IsPaid bool   `json:"is_paid"`
	}
	tests := []struct {
		name   string
		data   any
		status int
		body   string
	}{
		{"nil", nil, 200, `{"code":100,"message":"success","data":null}`},
		{"typed nil", (*session)(nil), 200, `{"code":100,"message":"success","data":null}`},
		{"struct", session{ID: "s1", IsPaid: true}, 200, `{"code":100,"message":"success","data":{"session_id":"s1","is_paid":true}}`},
		{"array", []int{1, 2}, 200, `{"code":100,"message":"success","data":[1,2]}`},
		{"not encodable", make(chan int), 500, `{"code":500000,"message":"Internal server error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			sserrors.WriteData(rec, tt.data)
			assert.Equal(t, tt.status, rec.Code)
			assert.Equal(t, http.Header{"Content-Type": {"application/json"}}, rec.Header())
			assert.Equal(t, tt.body, rec.Body.String())
		})
	}
}

func TestWriteToken(t *testing.T) {
	tests := []struct{ token, body string }{
		{"abc.DEF-123", `{"error":null,"data":{"token":"abc.DEF-123"}}`},
		{`q"\`, `{"error":null,"data":{"token":"q\"\\"}}`},
		{"", `{"error":null,"data":{"token":""}}`},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			rec := httptest.NewRecorder()
			sserrors.WriteToken(rec, tt.token)
			assert.Equal(t, 200, rec.Code)
			assert.Equal(t, http.Header{"Content-Type": {"application/json"}}, rec.Header())
			assert.Equal(t, tt.body, rec.Body.String())
		})
	}
}

func TestParse(t *testing.T) {
	// The seed writes a no-break space (U+00A0) in "[email protected]".
	const unknownMsg = "Something is wrong, please contact [email\u00a0protected]"
	long := strings.Repeat("é", 2000) // 4000 bytes
	tests := []struct {
		name   string
		status int
		body   string
		code   sserrors.Code
		want   int
		msg    string
	}{
		{"catalog body", 404, `{"code":10006,"message":"Session not found"}`, 10006, 404, "Session not found"},
		{"lower-case message kept", 400, `{"code":10005,"message":"session state wrong: closed"}`, 10005, 400, "session state wrong: closed"},
		{"extra fields", 429, `{"data":null,"code":10007,"x":{"y":[1]},"message":"Concurrent limit reached"}`, 10007, 429, "Concurrent limit reached"},
		{"status from HTTP, not catalog", 503, `{"code":400558,"message":"API connection error"}`, 400558, 503, "API connection error"},
		{"code as string", 404, `{"code":"10006","message":"Session not found"}`, 10006, 404, "Session not found"},
		{"code as float", 404, `{"code":1.0006e4}`, 10006, 404, "Session not found"},
		{"no message: catalog", 401, `{"code":400112}`, 400112, 401, "Unauthorized"},
		{"message not a string", 401, `{"code":400112,"message":7}`, 400112, 401, "Unauthorized"},
		{"nested error", 401, `{"error":{"code":400112,"message":"unauthorized"},"data":null}`, 400112, 401, "unauthorized"},
		{"unknown code kept", 418, `{"code":123456,"message":"teapot"}`, 123456, 418, "teapot"},
		{"unknown code, no message", 400, `{"code":123456}`, 123456, 400, "Bad Request"},
		{"unknown code, odd status, no message", 499, `{"code":123456}`, 123456, 499, "Unknown error"},
		{"unknown code, 2xx", 200, `{"code":123456,"message":"x"}`, 123456, 500, "x"},
		{"known code, 2xx", 200, `{"code":10006,"message":"Session not found"}`, 10006, 404, "Session not found"},
		{"no status at all", 0, `{"code":10014,"message":"Session full"}`, 10014, 429, "Session full"},
		{"empty 503", 503, ``, 400558, 503, "API connection error"},
		{"empty 502", 502, ``, 400558, 502, "API connection error"},
		{"html 401", 401, `<html>Unauthorized</html>`, 400112, 401, "Unauthorized"},
		{"empty 403", 403, ``, 400562, 403, "forbidden"},
		{"empty 404", 404, ``, 40051, 404, "Resource is not found"},
		{"empty 408", 408, ``, 400106, 408, "Request timeout"},
		{"empty 504", 504, ``, 400106, 504, "Request timeout"},
		{"empty 429", 429, ``, 400140, 429, "Exceed rate limit"},
		{"empty 418", 418, ``, 40099, 418, unknownMsg},
		{"empty 500", 500, ``, 500000, 500, "Internal server error"},
		{"empty 200", 200, ``, 500000, 500, "Internal server error"},
		{"negative status", -1, `x`, 500000, 500, "Internal server error"},
		{"message only", 401, `{"message":"token expired"}`, 400112, 401, "token expired"},
		{"success code is no error code", 400, `{"code":100,"message":"success"}`, 40099, 400, "success"},
		{"negative code", 400, `{"code":-5}`, 40099, 400, unknownMsg},
		{"zero code", 500, `{"code":0}`, 500000, 500, "Internal server error"},
		{"fractional code", 404, `{"code":10006.5}`, 40051, 404, "Resource is not found"},
		{"huge code", 404, `{"code":1e300}`, 40051, 404, "Resource is not found"},
		{"code overflowing int32", 404, `{"code":2147483648}`, 40051, 404, "Resource is not found"},
		{"code not a number", 404, `{"code":"ten"}`, 40051, 404, "Resource is not found"},
		{"code null", 404, `{"code":null}`, 40051, 404, "Resource is not found"},
		{"json null", 500, `null`, 500000, 500, "Internal server error"},
		{"json array", 500, `[{"code":10006}]`, 500000, 500, "Internal server error"},
		{"json string", 500, `"oops"`, 500000, 500, "Internal server error"},
		{"truncated json", 404, `{"code":10006,"mess`, 40051, 404, "Resource is not found"},
		{"long message cut on a rune", 400, `{"code":40001,"message":"` + long + `"}`, 40001, 400, long[:1024]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sserrors.Parse(tt.status, []byte(tt.body))
			require.NotNil(t, got)
			assert.Equal(t, tt.code, got.Code)
			assert.Equal(t, tt.want, got.Status)
			assert.Equal(t, tt.msg, got.Message)
			assert.Equal(t, time.Duration(0), got.RetryAfter)
		})
	}
	assert.True(t, stderrors.Is(sserrors.Parse(400, []byte(`{"code":10005,"message":"session state wrong: closed"}`)), sserrors.ErrSessionStateClosed))
	assert.True(t, utf8.ValidString(sserrors.Parse(400, []byte(`{"code":1,"message":"`+strings.Repeat("a", 1023)+`é"}`)).Message))
}

func TestParseNeverReturnsShared(t *testing.T) {
	got := sserrors.Parse(404, []byte(`{"code":10006,"message":"Session not found"}`))
	assert.NotSame(t, sserrors.ErrSessionNotFound, got)
}

func response(status int, header http.Header, body io.Reader) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	var rc io.ReadCloser
	if body != nil {
		rc = io.NopCloser(body)
	}
	return &http.Response{StatusCode: status, Header: header, Body: rc}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestFromResponse(t *testing.T) {
	date := "Wed, 21 Oct 2026 07:28:00 GMT"
	tests := []struct {
		name   string
		resp   *http.Response
		code   sserrors.Code
		status int
		after  time.Duration
	}{
		{"seconds", response(429, http.Header{"Retry-After": {"7"}}, strings.NewReader(`{"code":10014,"message":"Session full"}`)), 10014, 429, 7 * time.Second},
		{"http date from Date", response(503, http.Header{"Retry-After": {"Wed, 21 Oct 2026 07:28:30 GMT"}, "Date": {date}}, nil), 400558, 503, 30 * time.Second},
		{"http date in the past", response(503, http.Header{"Retry-After": {"Wed, 21 Oct 2026 07:27:00 GMT"}, "Date": {date}}, nil), 400558, 503, 0},
		{"http date without Date", response(503, http.Header{"Retry-After": {"Wed, 21 Oct 2026 07:28:30 GMT"}}, nil), 400558, 503, 0},
		{"garbage", response(429, http.Header{"Retry-After": {"soon"}}, nil), 400140, 429, 0},
		{"negative", response(429, http.Header{"Retry-After": {"-3"}}, nil), 400140, 429, 0},
		{"huge capped", response(429, http.Header{"Retry-After": {"99999999999999999999"}}, nil), 400140, 429, 24 * time.Hour},
		{"no body", response(404, nil, nil), 40051, 404, 0},
		{"nil response", nil, 500000, 500, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sserrors.FromResponse(tt.resp)
			require.NotNil(t, got)
			assert.Equal(t, tt.code, got.Code)
			assert.Equal(t, tt.status, got.Status)
			assert.Equal(t, tt.after, got.RetryAfter)
		})
	}
}

func TestFromResponseReadsAtMostOneMiB(t *testing.T) {
	body := `{"code":10006,"message":"` + strings.Repeat("a", 2<<20) + `"}`
	r := &countingReader{r: strings.NewReader(body)}
	got := sserrors.FromResponse(response(404, nil, r))
	assert.Equal(t, sserrors.MaxBodyBytes, r.n)
	assert.Equal(t, sserrors.CodeResourceNotFound, got.Code, "a cut body is not JSON")
	assert.Equal(t, 404, got.Status)
}

func TestFromResponseReadError(t *testing.T) {
	boom := stderrors.New("connection reset")
	got := sserrors.FromResponse(response(502, nil, iotest.ErrReader(boom)))
	assert.Equal(t, sserrors.CodeAPIConnectionError, got.Code)
	assert.Equal(t, 502, got.Status)
	assert.ErrorIs(t, got, boom)
}

func TestWriteThenFromResponse(t *testing.T) {
	rec := httptest.NewRecorder()
	sserrors.Write(rec, sserrors.ErrSessionFull.WithRetryAfter(3*time.Second))
	resp := rec.Result()
	defer resp.Body.Close()
	got := sserrors.FromResponse(resp)
	assert.Equal(t, sserrors.CodeSessionFull, got.Code)
	assert.Equal(t, 429, got.Status)
	assert.Equal(t, "Session full", got.Message)
	assert.Equal(t, 3*time.Second, got.RetryAfter)
}

func TestDecodeData(t *testing.T) {
	type tokenData struct {
		Token string `json:"token"`
	}
	tests := []struct {
		name  string
		body  string
		token string
		code  sserrors.Code // 0: success
	}{
		{"success", `{"code":100,"message":"success","data":{"token":"t1"}}`, "t1", 0},
		{"success, code as string", `{"code":"100","message":"success","data":{"token":"t2"}}`, "t2", 0},
		{"success, null data", `{"code":100,"message":"success","data":null}`, "", 0},
		{"success, no data", `{"code":100,"message":"success"}`, "", 0},
		{"create_token", `{"error":null,"data":{"token":"t3"}}`, "t3", 0},
		{"create_token, extra", `{"data":{"token":"t4","x":1}}`, "t4", 0},
		{"flat error", `{"code":10006,"message":"Session not found"}`, "", 10006},
		{"nested error", `{"error":{"code":400112,"message":"Unauthorized"},"data":null}`, "", 400112},
		{"error with non-numeric code", `{"error":{"code":"invalid_parameter","message":"bad"}}`, "", 500000},
		{"not json", `<html>`, "", 500000},
		{"empty", ``, "", 500000},
		{"empty object", `{}`, "", 500000},
		{"wrong data type", `{"code":100,"message":"success","data":{"token":5}}`, "", 500000},
		{"data not an object", `{"code":100,"message":"success","data":"x"}`, "", 500000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v tokenData
			err := sserrors.DecodeData([]byte(tt.body), &v)
			if tt.code == 0 {
				require.NoError(t, err)
				assert.Equal(t, tt.token, v.Token)
				return
			}
			require.Error(t, err)
			e, ok := sserrors.As(err)
			require.True(t, ok)
			assert.Equal(t, tt.code, e.Code)
		})
	}
	err := sserrors.DecodeData([]byte(`{"code":10006,"message":"Session not found"}`), nil)
	assert.ErrorIs(t, err, sserrors.ErrSessionNotFound)
	assert.Equal(t, 404, sserrors.StatusOf(err))
	assert.NoError(t, sserrors.DecodeData([]byte(`{"code":100,"message":"success","data":{"a":1}}`), nil))
}

func TestDecodeResponse(t *testing.T) {
	rec := httptest.NewRecorder()
	sserrors.WriteData(rec, map[string]string{"session_id": "abc"})
	resp := rec.Result()
	defer resp.Body.Close()
	var data struct {
		SessionID string `json:"session_id"`
	}
	require.NoError(t, sserrors.DecodeResponse(resp, &data))
	assert.Equal(t, "abc", data.SessionID)

	rec = httptest.NewRecorder()
	sserrors.Write(rec, sserrors.ErrConcurrentLimitReached)
	resp = rec.Result()
	defer resp.Body.Close()
	err := sserrors.DecodeResponse(resp, &data)
	assert.ErrorIs(t, err, sserrors.ErrConcurrentLimitReached)
	assert.Equal(t, 429, sserrors.StatusOf(err))

	assert.Equal(t, sserrors.CodeInternalServerError, sserrors.CodeOf(sserrors.DecodeResponse(nil, &data)))
	err = sserrors.DecodeResponse(response(200, nil, iotest.ErrReader(io.ErrUnexpectedEOF)), &data)
	assert.Equal(t, sserrors.CodeInternalServerError, sserrors.CodeOf(err))
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func FuzzParse(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{404, `{"code":10006,"message":"Session not found"}`},
		{400, `{"code":10005,"message":"session state wrong: closed"}`},
		{429, `{"code":10014,"message":"Session full","extra":[1,2,{}]}`},
		{401, `{"error":{"code":400112,"message":"Unauthorized"},"data":null}`},
		{200, `{"code":100,"message":"success","data":{"session_id":"x"}}`},
		{418, `{"code":123456}`},
		{503, ``},
		{502, `<html>bad gateway</html>`},
		{0, `{"code":"10006"}`},
		{-7, `{"code":1e400,"message":null}`},
		{999, `{"code":-1,"message":"\ud800"}`},
		{1 << 40, `{"code":2147483647,"message":"` + strings.Repeat("ü", 600) + `"}`},
	}
	for _, s := range seeds {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := sserrors.Parse(status, body)
		if e == nil {
			t.Fatal("Parse returned nil")
		}
		if e.Status < 400 || e.Status > 599 {
			t.Fatalf("Parse(%d, %q).Status = %d, want 400–599", status, body, e.Status)
		}
		if e.Code < 1 || e.Code == sserrors.SuccessCode {
			t.Fatalf("Parse(%d, %q).Code = %d", status, body, e.Code)
		}
		if e.Message == "" || len(e.Message) > 1024 || !utf8.ValidString(e.Message) {
			t.Fatalf("Parse(%d, %q).Message = %q", status, body, e.Message)
		}
		// What Parse returns, Write sends and Parse reads back unchanged.
		rec := httptest.NewRecorder()
		sserrors.Write(rec, e)
		back := sserrors.Parse(rec.Code, rec.Body.Bytes())
		if *back != *e {
			t.Fatalf("round trip of %+v gave %+v", *e, *back)
		}
	})
}
