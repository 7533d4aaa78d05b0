package console_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/streamsession/streamsession/console"
)

// ExampleHandler mounts the console at "/" next to the API, as
// examples/streaming does, and reads what the page learns first: where the
// API is and which demo keys to offer.
func ExampleHandler() {
	mux := http.NewServeMux()
	// mux.Handle("/v1/", server.New(...)) serves the API the page calls.
	mux.Handle("/", console.Handler(console.Options{
		DemoKeys: []console.DemoKey{{Name: "demo-trial", APIKey: "demo-trial-key"}},
	}))

	srv := httptest.NewServer(mux)
	defer srv.Close()

	res, err := srv.Client().Get(srv.URL + "/config.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	fmt.Println(res.Header.Get("Content-Type"))
	fmt.Println(string(b))
	// Output:
	// application/json
	// {"api_base":"/v1","demo_keys":[{"name":"demo-trial","api_key":"demo-trial-key"}]}
}
