package media_test

import (
	"fmt"
	"sync"
	"time"

	"github.com/streamsession/streamsession/media"
)

// renderer is a backend's own avatar: a Source whose Players would encode
// frames from a renderer (here they write a fixed frame, to stay short).
type renderer struct{ frame, silence, voice []byte }

func (r renderer) NewPlayer(out media.Output) media.Player {
	p := &player{r: r, out: out, stop: make(chan struct{})}
	p.wg.Add(1)
	go p.run()
	return p
}

type player struct {
	r       renderer
	out     media.Output
	mu      sync.Mutex
	talking bool
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

func (p *player) Talking(on bool) { p.mu.Lock(); p.talking = on; p.mu.Unlock() }

func (p *player) Close() { p.once.Do(func() { close(p.stop) }); p.wg.Wait() }

func (p *player) run() {
	defer p.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for n := 0; ; n++ {
		p.mu.Lock()
		audio := p.r.silence
		if p.talking {
			audio = p.r.voice
		}
		p.mu.Unlock()
		if p.out.WriteAudio(media.Sample{Data: audio, Duration: 20 * time.Millisecond}) != nil {
			return
		}
		if n%2 == 0 && p.out.WriteVideo(media.Sample{Data: p.r.frame, Duration: 40 * time.Millisecond}) != nil {
			return
		}
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

// A backend plugs in its own avatar with Config.Source: the Engine asks it
// for a Player when a session's peer connects, switches it to talking for
// each task, and closes it with the peer.
func Example_ownSource() {
	cfg := media.Config{
		UDPAddr: "127.0.0.1:0",
		Source:  renderer{ /* VP8 frames and Opus packets from your renderer */ },
	}
	fmt.Printf("%T\n", cfg.Source)
	// Output: media_test.renderer
}
