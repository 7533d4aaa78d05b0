package server_test

import (
	"context"
	"fmt"
	"time"

	"github.com/streamsession/streamsession/server"
)

// ExampleMemoryRateLimiter spends a budget of 2 requests a second, 2 at
// once, on an injected clock: the third request at once is refused until
// half a second has passed.
func ExampleMemoryRateLimiter() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rates := server.NewMemoryRateLimiter(server.MemoryRateLimiterConfig{Now: func() time.Time { return now }})
	limit := server.RateLimit{PerSecond: 2, Burst: 2}
	for range 3 {
		d, _ := rates.Allow(context.Background(), "acme", limit)
		fmt.Println(d.Allowed, d.RetryAfter)
	}
	now = now.Add(500 * time.Millisecond)
	d, _ := rates.Allow(context.Background(), "acme", limit)
	fmt.Println(d.Allowed)
	// Output:
	// true 0s
	// true 0s
	// false 500ms
	// true
}

// ExampleOriginPolicy checks browser origins against Config.Origins.
func ExampleOriginPolicy() {
	p, err := server.NewOriginPolicy([]string{"https://app.example.com", "http://localhost:*"})
	if err != nil {
		panic(err)
	}
	for _, origin := range []string{"https://app.example.com", "http://localhost:5173", "https://evil.example.com"} {
		fmt.Println(origin, p.Allows(origin))
	}
	// Output:
	// https://app.example.com true
	// http://localhost:5173 true
	// https://evil.example.com false
}
