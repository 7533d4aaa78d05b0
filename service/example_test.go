package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/streamsession/streamsession/service"
)

// ExampleNew builds a node of a configuration file's keys, serves its
// handler and creates a session through the API, then shuts the node down.
func ExampleNew() {
	cfg, err := service.Parse([]byte(`{
		"capacity": 10,
		"plans": {"pro": {"max_concurrent": 2, "requests_per_second": 5}},
		"accounts": [{"api_key": "key-1", "name": "acme", "plan": "pro"}]
	}`))
	if err != nil {
		panic(err)
	}
	node, err := service.New(context.Background(), cfg, service.Options{})
	if err != nil {
		panic(err)
	}
	ts := httptest.NewServer(node.Handler())
	defer ts.Close()
	defer node.Shutdown(context.Background())

	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/streaming.new", strings.NewReader(`{}`))
	req.Header.Set("X-Api-Key", "key-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Code int `json:"code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	fmt.Println(resp.StatusCode, answer.Code)
	fmt.Println(cfg.Plans["pro"].RequestsPerSecond, cfg.Plans["pro"].RequestBurst)
	// Output:
	// 200 100
	// 5 5
}
