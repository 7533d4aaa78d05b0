package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// allowAll grants every session: the example does not depend on a limiter.
type allowAll struct{}

func (allowAll) Acquire(_ context.Context, r limits.Request) (limits.Decision, error) {
	return limits.Decision{Lease: limits.Lease{Account: r.Account, SessionID: r.SessionID}}, nil
}
func (allowAll) Started(context.Context, limits.Lease) error { return nil }
func (allowAll) Renew(_ context.Context, l limits.Lease) (limits.Lease, error) {
	return l, nil
}
func (allowAll) Keep(context.Context, limits.Lease) error    { return nil }
func (allowAll) Release(context.Context, limits.Lease) error { return nil }
func (allowAll) Close() error                                { return nil }

// Example mounts the Streaming API in an application's own mux, creates a
// session with an API key, and shows a wrong-state refusal and a stop.
func Example() {
	ctx := context.Background()
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	mgr, err := session.NewManager(session.Config{Limiter: allowAll{}, Avatars: avatars})
	if err != nil {
		panic(err)
	}
	defer mgr.Close(ctx)
	srv, err := server.New(server.Config{
		Manager:  mgr,
		Accounts: server.AccountsByKey{"my-api-key": {Name: "me", Plan: limits.PaidPlan}},
		Avatars:  avatars,
	})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)

	mux := http.NewServeMux()
	mux.Handle("/v1/", srv)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	ts := httptest.NewServer(mux)
	defer ts.Close()

	post := func(path, body string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(body))
		req.Header.Set("X-Api-Key", "my-api-key")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	status, body := post(server.PathNew, `{"quality":"high"}`)
	var created struct {
		SessionID        string `json:"session_id"`
		RealtimeEndpoint string `json:"realtime_endpoint"`
		IsPaid           bool   `json:"is_paid"`
	}
	if err := sserrors.DecodeData(body, &created); err != nil {
		panic(err)
	}
	fmt.Println("new:", status, "paid:", created.IsPaid, "socket:", strings.HasPrefix(created.RealtimeEndpoint, "ws://"))

	id := `{"session_id":"` + created.SessionID + `","text":"Hello"}`
	status, body = post(server.PathTask, id)
	fmt.Println("task before connect:", status, string(body))

	status, body = post(server.PathStop, id)
	fmt.Println("stop:", status, string(body))
	// Output:
	// new: 200 paid: true socket: true
	// task before connect: 400 {"code":10001,"message":"Session state wrong: new"}
	// stop: 200 {"code":100,"message":"success","data":null}
}

// ExampleDecodeClientMessage shows which realtime messages a server
// accepts.
func ExampleDecodeClientMessage() {
	for _, raw := range []string{
		`{"type":"agent.speak","text":"Hello"}`,
		`{"type":"session.keep_alive"}`,
		`{"type":"agent.dance"}`,
	} {
		msg, err := realtime.DecodeClientMessage([]byte(raw))
		if err != nil {
			fmt.Println("refused:", sserrors.CodeOf(err))
			continue
		}
		b, _ := json.Marshal(msg)
		fmt.Println("accepted:", string(b))
	}
	// Output:
	// accepted: {"type":"agent.speak","text":"Hello"}
	// accepted: {"type":"session.keep_alive"}
	// refused: 400175
}
