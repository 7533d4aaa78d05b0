package server

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestConcurrentNew: of a burst of streaming.new on a plan of one session,
// exactly one succeeds and the others get 10007.
func TestConcurrentNew(t *testing.T) {
	e := newEnv(t, nil)
	const n = 32
	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r := e.post("key-limited", PathNew, "{}")
			switch {
			case r.status == http.StatusOK:
				ok.Add(1)
			case r.status == http.StatusTooManyRequests && r.body == `{"code":10007,"message":"Concurrent limit reached"}`:
				limited.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), ok.Load())
	assert.Equal(t, int32(n-1), limited.Load())
	assert.Equal(t, 1, e.lim.heldCount())
}

// TestConcurrentNewWithOneToken: one bearer token creates one session, however
// many streaming.new race with it.
func TestConcurrentNewWithOneToken(t *testing.T) {
	e := newEnv(t, nil)
	token := e.mintToken("key-acme")
	const n = 32
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r := e.do(http.MethodPost, PathNew, bearer(token), "{}")
			switch {
			case r.status == http.StatusOK:
				ok.Add(1)
			case r.status == http.StatusUnauthorized && r.body == bodyUnauthorized:
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), ok.Load())
	assert.Equal(t, int32(n-1), refused.Load())
	assert.Equal(t, 1, e.lim.heldCount())
}
