package errors_test

import (
	stderrors "errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
)

func ExampleWrite() {
	rec := httptest.NewRecorder()
	err := fmt.Errorf("streaming.stop: %w", sserrors.ErrSessionNotFound)
	sserrors.Write(rec, err)
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Println(rec.Body.String())

	rec = httptest.NewRecorder()
	sserrors.Write(rec, sserrors.ErrSessionFull.WithRetryAfter(5*time.Second))
	fmt.Println(rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
	// Output:
	// 404 application/json
	// {"code":10006,"message":"Session not found"}
	// 429 5 {"code":10014,"message":"Session full"}
}

func ExampleWriteData() {
	rec := httptest.NewRecorder()
	sserrors.WriteData(rec, map[string]any{"task_id": "t1", "duration_ms": 1200})
	fmt.Println(rec.Code, rec.Body.String())
	// Output:
	// 200 {"code":100,"message":"success","data":{"duration_ms":1200,"task_id":"t1"}}
}

func ExampleParse() {
	// HeyGen's live servers send lower-case messages: Parse matches on code.
	err := sserrors.Parse(400, []byte(`{"code":10005,"message":"session state wrong: closed"}`))
	fmt.Println(err.Code, err.Status, err.Message)
	fmt.Println(stderrors.Is(err, sserrors.ErrSessionStateClosed))

	// A proxy's HTML page: the code comes from the HTTP status.
	err = sserrors.Parse(503, []byte("<html>Service Unavailable</html>"))
	fmt.Println(err.Code, err.Status, err.Message)
	// Output:
	// 10005 400 session state wrong: closed
	// true
	// 400558 503 API connection error
}

func ExampleFromResponse() {
	resp := &http.Response{
		StatusCode: 429,
		Header:     http.Header{"Retry-After": {"3"}},
		Body:       io.NopCloser(strings.NewReader(`{"code":10014,"message":"Session full"}`)),
	}
	defer resp.Body.Close()
	err := sserrors.FromResponse(resp)
	retry, after := sserrors.Retryable(err)
	fmt.Println(err.Code, retry, after)
	// Output:
	// 10014 true 3s
}

func ExampleDecodeData() {
	var data struct {
		Token string `json:"token"`
	}
	err := sserrors.DecodeData([]byte(`{"error":null,"data":{"token":"abc"}}`), &data)
	fmt.Println(data.Token, err)

	err = sserrors.DecodeData([]byte(`{"code":10007,"message":"Concurrent limit reached"}`), &data)
	fmt.Println(sserrors.CodeOf(err), sserrors.StatusOf(err))
	// Output:
	// abc <nil>
	// 10007 429
}

func Example_is() {
	err := fmt.Errorf("streaming.task: %w", fmt.Errorf("session s1: %w", sserrors.SessionState("connecting")))
	fmt.Println(stderrors.Is(err, sserrors.ErrSessionStateConnecting))
	fmt.Println(stderrors.Is(err, sserrors.ErrSessionStateConnected))
	fmt.Println(sserrors.CodeOf(err), sserrors.StatusOf(err))
	fmt.Println(err)
	// Output:
	// true
	// false
	// 10002 400
	// streaming.task: session s1: streamsession: Session state wrong: connecting (code 10002)
}

func ExampleInvalidURL() {
	err := sserrors.InvalidURL("ftp//x")
	fmt.Println(err.Code, err.Status, err.Message)
	fmt.Println(stderrors.Is(err, sserrors.ErrInvalidParameter))
	// Output:
	// 400175 400 not a valid URL: ftp//x
	// true
}

func ExampleLookupEntry() {
	e, ok := sserrors.LookupEntry(400112)
	fmt.Println(ok, e.Enum, e.Message, e.Status)
	// Output:
	// true UNAUTHORIZED Unauthorized 401
}
