package media_test

import (
	"context"
	"fmt"
	"time"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/media/mediatest"
	"github.com/streamsession/streamsession/session"
)

// A session driven by its media: the server's offer, a client's answer and
// candidate, connected once ICE and DTLS are up, a task's talking events on
// the data channel, and the client closing its peer (media_lost).
func ExampleEngine() {
	ctx := context.Background()
	limiter := limits.NewMemory(limits.MemoryConfig{})
	defer limiter.Close()
	mgr, _ := session.NewManager(session.Config{
		Limiter: limiter,
		Avatars: session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}},
	})
	eng, err := media.New(mgr, media.Config{UDPAddr: "127.0.0.1:0"}) // the synthetic avatar
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	defer mgr.Close(ctx)
	states := make(chan session.Event, 16)
	cancel := mgr.Subscribe(func(e session.Event) { states <- e })
	defer cancel()
	next := func() session.Event { return <-states }

	acct := session.Account{Name: "acme", Plan: limits.PaidPlan}
	s, _ := mgr.Create(ctx, acct, session.CreateOptions{})
	offer, _ := eng.Offer(ctx, "acme", s.ID) // streaming.new
	fmt.Println("created:", next().To, "offer:", offer.Type)

	api, _ := mediatest.LoopbackAPI()
	client, answer, _ := mediatest.Answer(api, offer) // the browser
	defer client.PC.Close()
	cand, _ := client.Candidate(5 * time.Second)
	_ = eng.AddCandidate("acme", s.ID, cand)        // streaming.ice, before start: kept
	info, _ := eng.Start(ctx, "acme", s.ID, answer) // streaming.start
	fmt.Println("start:", info.State, next().To)
	fmt.Println("media up:", next().To)

	<-client.Opened
	eng.Say(s.ID, "task-1", 100*time.Millisecond) // streaming.task
	for range 2 {
		m, _ := client.Message(5 * time.Second)
		fmt.Println("data channel:", m["type"], m["task_id"])
	}

	_ = client.PC.Close() // the user closes the tab
	for e := next(); ; e = next() {
		if e.To == fsm.Closed {
			fmt.Println("closed:", e.Reason)
			break
		}
	}
	// Output:
	// created: new offer: offer
	// start: connecting connecting
	// media up: connected
	// data channel: avatar_start_talking task-1
	// data channel: avatar_stop_talking task-1
	// closed: media_lost
}
