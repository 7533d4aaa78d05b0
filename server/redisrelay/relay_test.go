package redisrelay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/server/realtime"
)

func TestMain(m *testing.M) {
	// go-redis logs dial failures through a package logger; the failure
	// tests cause them on purpose.
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(redistest.ExamplesMain(m, "Example"))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// received is one message as a subscription got it.
type received struct {
	session string
	msg     realtime.RelayMessage
}

// inbox collects what a subscription receives; next waits for the next
// message (the messages travel through a real Redis: there is no clock to
// fake, only a guard deadline).
type inbox struct {
	ch chan received
}

func newInbox() *inbox { return &inbox{ch: make(chan received, 10000)} }

func (b *inbox) fn(id string, msg realtime.RelayMessage) { b.ch <- received{id, msg} }

func (b *inbox) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-b.ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return received{}
	}
}

func subscribe(t *testing.T, r *Relay) *inbox {
	t.Helper()
	b := newInbox()
	cancel, err := r.Subscribe(b.fn)
	require.NoError(t, err)
	t.Cleanup(cancel)
	return b
}

func newRelay(t *testing.T, client redis.UniversalClient, cfg Config) *Relay {
	t.Helper()
	r, err := New(client, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

func TestNewInvalid(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	tests := []struct {
		name   string
		client redis.UniversalClient
		cfg    Config
	}{
		{"nil client", nil, Config{}},
		{"open brace", client, Config{Prefix: "a{b"}},
		{"close brace", client, Config{Prefix: "a}"}},
		{"negative wait", client, Config{SubscribeWait: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.client, tt.cfg)
			assert.Nil(t, r)
			assert.Equal(t, sserrors.CodeOf(sserrors.ErrInvalidParameter), sserrors.CodeOf(err))
		})
	}
	r, err := New(client, Config{Prefix: "svc"})
	require.NoError(t, err)
	assert.Equal(t, "{svc}:relay", r.channel)
	assert.Equal(t, DefaultSubscribeWait, r.wait)
}

// TestOneOrderForEveryNode publishes from two nodes at once: every
// subscription of every node, the publishers' own included, receives every
// message once, in one order.
// publishFromWorkers has workers goroutines, taking relays in turn, each
// publish perWorker messages msg(w, i) about session "s<w>", then reads as
// many from every inbox, checks that all of them got one order, and returns
// it.
func publishFromWorkers(t *testing.T, relays []*Relay, inboxes []*inbox, workers, perWorker int, msg func(w, i int) realtime.RelayMessage) []received {
	t.Helper()
	var wg sync.WaitGroup
	for w := range workers {
		relay := relays[w%len(relays)]
		wg.Go(func() {
			for i := range perWorker {
				assert.NoError(t, relay.Publish(context.Background(), fmt.Sprintf("s%d", w), msg(w, i)))
			}
		})
	}
	wg.Wait()
	var orders [][]received
	for _, in := range inboxes {
		var got []received
		for range perWorker * workers {
			got = append(got, in.next(t))
		}
		orders = append(orders, got)
	}
	for i := 1; i < len(orders); i++ {
		assert.Equal(t, orders[0], orders[i], "subscription %d's order", i)
	}
	return orders[0]
}

func TestOneOrderForEveryNode(t *testing.T) {
	srv := redistest.Start(t)
	a := newRelay(t, srv.Client(), Config{Prefix: "t"})
	b := newRelay(t, srv.Client(), Config{Prefix: "t"})
	other := newRelay(t, srv.Client(), Config{Prefix: "other"})
	inboxes := []*inbox{subscribe(t, a), subscribe(t, b), subscribe(t, b)}
	otherInbox := subscribe(t, other)

	const perWorker, workers = 50, 4
	order := publishFromWorkers(t, []*Relay{a, b}, inboxes, workers, perWorker, func(w, i int) realtime.RelayMessage {
		if i%3 == 0 {
			return realtime.RelayMessage{Kind: realtime.RelayInterrupt}
		}
		return realtime.RelayMessage{Kind: realtime.RelaySpeak, TaskID: fmt.Sprintf("w%d-%d", w, i), Duration: time.Duration(i) * time.Millisecond}
	})
	// Each worker's messages, complete and in its own order.
	for w := range workers {
		var tasks []string
		for _, r := range order {
			if r.session == fmt.Sprintf("s%d", w) && r.msg.Kind == realtime.RelaySpeak {
				tasks = append(tasks, r.msg.TaskID)
				i := 0
				fmt.Sscanf(r.msg.TaskID, fmt.Sprintf("w%d-%%d", w), &i)
				assert.Equal(t, time.Duration(i)*time.Millisecond, r.msg.Duration)
			}
		}
		var want []string
		for i := range perWorker {
			if i%3 != 0 {
				want = append(want, fmt.Sprintf("w%d-%d", w, i))
			}
		}
		assert.Equal(t, want, tasks)
	}

	// Another prefix is another service: it heard nothing. A message
	// published there now is the first it receives.
	require.NoError(t, other.Publish(context.Background(), "x", realtime.RelayMessage{Kind: realtime.RelayInterrupt}))
	assert.Equal(t, received{"x", realtime.RelayMessage{Kind: realtime.RelayInterrupt}}, otherInbox.next(t))
}

// TestRepeatsAndMalformedAreDropped publishes on the channel directly: a
// message repeated (a retried PUBLISH) is delivered once, and malformed
// ones are not delivered at all.
func TestRepeatsAndMalformedAreDropped(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	r := newRelay(t, client, Config{})
	in := subscribe(t, r)
	ctx := context.Background()
	publish := func(p string) { require.NoError(t, client.Publish(ctx, r.channel, p).Err()) }

	speak := `{"n":"00000000000000010000000000000001","s":"s1","k":"speak","t":"task-1","d":770000000}`
	publish(speak)
	for _, bad := range []string{
		``, `not json`, `[]`, `{}`, `{"n":"1","s":"","k":"speak"}`, `{"n":"","s":"s1","k":"speak"}`,
		`{"n":"2","s":"s1"}`, `{"n":3,"s":"s1","k":"speak"}`, `{"n":"4","s":"s1","k":"speak","d":"long"}`,
	} {
		publish(bad)
	}
	publish(speak)
	publish(`{"n":"00000000000000010000000000000002","s":"s1","k":"interrupt"}`)

	assert.Equal(t, received{"s1", realtime.RelayMessage{Kind: realtime.RelaySpeak, TaskID: "task-1", Duration: 770 * time.Millisecond}}, in.next(t))
	assert.Equal(t, received{"s1", realtime.RelayMessage{Kind: realtime.RelayInterrupt}}, in.next(t), "the repeat and the malformed were dropped")
}

func TestRecentWindow(t *testing.T) {
	r := newRecent(3)
	for _, n := range []string{"a", "b", "c"} {
		assert.True(t, r.add(n), n)
	}
	assert.False(t, r.add("a"))
	assert.False(t, r.add("c"))
	assert.True(t, r.add("d")) // forgets a
	assert.True(t, r.add("a"))
	assert.False(t, r.add("d"))
	assert.Len(t, r.set, 3)
}

func TestPublishFailures(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.NewClient(&redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1})
	r := newRelay(t, client, Config{})
	ctx := context.Background()
	msg := realtime.RelayMessage{Kind: realtime.RelayInterrupt}

	err := r.Publish(ctx, "", msg)
	assert.Equal(t, sserrors.CodeOf(sserrors.ErrInvalidParameter), sserrors.CodeOf(err))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = r.Publish(cctx, "s1", msg)
	assert.Equal(t, 503, sserrors.StatusOf(err))
	assert.Equal(t, sserrors.CodeOf(sserrors.ErrAPIConnectionError), sserrors.CodeOf(err))
	assert.ErrorIs(t, err, context.Canceled)

	srv.Kill()
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	defer dcancel()
	err = r.Publish(dctx, "s1", msg)
	assert.Equal(t, 503, sserrors.StatusOf(err), "Redis down: %v", err)
	retry, after := sserrors.Retryable(err)
	assert.True(t, retry)
	assert.Equal(t, time.Second, after)

	require.NoError(t, r.Close())
	err = r.Publish(ctx, "s1", msg)
	assert.Equal(t, 503, sserrors.StatusOf(err))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = r.Subscribe(func(string, realtime.RelayMessage) {})
	assert.ErrorIs(t, err, ErrClosed)
	require.NoError(t, r.Close(), "Close twice")
}

// TestSubscriptionSurvivesRestart: go-redis resubscribes after Redis comes
// back, and later messages arrive (those published meanwhile are lost).
func TestSubscriptionSurvivesRestart(t *testing.T) {
	srv := redistest.Start(t)
	r := newRelay(t, srv.NewClient(&redis.Options{ContextTimeoutEnabled: true}), Config{})
	in := subscribe(t, r)
	ctx := context.Background()
	require.NoError(t, r.Publish(ctx, "s1", realtime.RelayMessage{Kind: realtime.RelayInterrupt}))
	assert.Equal(t, "s1", in.next(t).session)

	srv.Restart()
	// Publish until the resubscribed connection hears one; each attempt
	// waits a little for its message (a guard of attempts, no assertion on
	// how long the reconnection takes).
	var got received
	for i := 0; got.session == ""; i++ {
		require.Less(t, i, 100, "no message after the restart")
		_ = r.Publish(ctx, fmt.Sprintf("after-%d", i), realtime.RelayMessage{Kind: realtime.RelayInterrupt})
		select {
		case got = <-in.ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
	assert.Regexp(t, `^after-\d+$`, got.session)
}

func TestCancelStopsDelivery(t *testing.T) {
	srv := redistest.Start(t)
	r := newRelay(t, srv.Client(), Config{})
	kept := newInbox()
	cancelKept, err := r.Subscribe(kept.fn)
	require.NoError(t, err)
	defer cancelKept()
	gone := newInbox()
	cancel, err := r.Subscribe(gone.fn)
	require.NoError(t, err)
	cancel()
	cancel() // twice: nothing more

	require.NoError(t, r.Publish(context.Background(), "s1", realtime.RelayMessage{Kind: realtime.RelayInterrupt}))
	assert.Equal(t, "s1", kept.next(t).session)
	assert.Empty(t, gone.ch, "a cancelled subscription hears nothing")
	_, err = r.Subscribe(nil)
	assert.Error(t, err)
	assert.False(t, errors.Is(err, ErrClosed))
}

// TestReplaceRoundTrip: an announcement crosses Redis with its socket
// token, and the token's field is the one on the wire.
func TestReplaceRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	r := newRelay(t, client, Config{})
	in := subscribe(t, r)
	ctx := context.Background()

	replace := realtime.RelayMessage{Kind: realtime.RelayReplace, Socket: "tok-1"}
	require.NoError(t, r.Publish(ctx, "s1", replace))
	assert.Equal(t, received{"s1", replace}, in.next(t))

	raw := []string{
		`{"n":"00000000000000020000000000000001","s":"s2","k":"replace","o":"tok-2"}`,
		`{"n":"00000000000000020000000000000002","s":"s2","k":"replace","o":7}`, // malformed: dropped
		`{"n":"00000000000000020000000000000003","s":"s2","k":"replace"}`,       // no token: the server ignores it
	}
	for _, p := range raw {
		require.NoError(t, client.Publish(ctx, r.channel, p).Err())
	}
	assert.Equal(t, received{"s2", realtime.RelayMessage{Kind: realtime.RelayReplace, Socket: "tok-2"}}, in.next(t))
	assert.Equal(t, received{"s2", realtime.RelayMessage{Kind: realtime.RelayReplace}}, in.next(t))
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		session string
		msg     realtime.RelayMessage
		ok      bool
	}{
		{"speak", `{"n":"1","s":"s1","k":"speak","t":"task-1","d":5}`, "s1", realtime.RelayMessage{Kind: realtime.RelaySpeak, TaskID: "task-1", Duration: 5}, true},
		{"interrupt", `{"n":"1","s":"s1","k":"interrupt"}`, "s1", realtime.RelayMessage{Kind: realtime.RelayInterrupt}, true},
		{"replace", `{"n":"1","s":"s1","k":"replace","o":"tok"}`, "s1", realtime.RelayMessage{Kind: realtime.RelayReplace, Socket: "tok"}, true},
		{"token not a string", `{"n":"1","s":"s1","k":"replace","o":["tok"]}`, "", realtime.RelayMessage{}, false},
		{"no kind", `{"n":"1","s":"s1","o":"tok"}`, "", realtime.RelayMessage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			session, msg, _, ok := decode(tt.data)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.session, session)
			assert.Equal(t, tt.msg, msg)
		})
	}
}
