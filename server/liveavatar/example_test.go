package liveavatar_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/liveavatar"
	"github.com/streamsession/streamsession/session"
)

// Mount LiveAvatar's API beside the Streaming API, over one Manager, with
// one secret and one request budget.
func Example() {
	lim := limits.NewMemory(limits.MemoryConfig{})
	defer lim.Close()
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	accounts := server.AccountsByKey{"key-acme": {Name: "acme", Plan: limits.Plan{Name: "pro", MaxConcurrent: 1}}}
	mgr, _ := session.NewManager(session.Config{Limiter: lim, Avatars: avatars})
	secret := []byte("0123456789abcdef0123456789abcdef")
	srv, _ := server.New(server.Config{Manager: mgr, Accounts: accounts, Avatars: avatars, Secret: secret})
	la, _ := liveavatar.New(liveavatar.Config{Manager: mgr, Accounts: accounts, Secret: secret, Allow: srv.Allow})
	defer func() {
		ctx := context.Background()
		mgr.Close(ctx)
		la.Shutdown(ctx)
		srv.Shutdown(ctx)
	}()

	mux := http.NewServeMux()
	mux.Handle("/v1/sessions", la)
	mux.Handle("/v1/sessions/", la)
	mux.Handle("/", srv)

	post := func(body string) {
		r := httptest.NewRequest("POST", liveavatar.PathToken, strings.NewReader(body))
		r.Header.Set("X-API-KEY", "key-acme")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		b, _ := io.ReadAll(w.Body)
		out := string(b)
		if w.Code == http.StatusOK {
			out = out[:strings.Index(out, `"data"`)] + "…"
		}
		fmt.Print(w.Code, " ", out)
		if w.Code == http.StatusOK {
			fmt.Println()
		}
	}
	post(`{"mode":"LITE","avatar_id":"Wayne_20240711"}`)
	post(`{"mode":"LITE","avatar_id":"Wayne_20240711"}`) // the plan holds one session
	post(`{"mode":"LITE"}`)
	// Output:
	// 200 {"code":1000,…
	// 403 {"code":4003,"data":null,"message":"Session concurrency limit reached"}
	// 422 {"detail":[{"loc":["body","avatar_id"],"msg":"Field required","type":"missing"}]}
}
