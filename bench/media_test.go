package bench

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/media/mediatest"
	"github.com/streamsession/streamsession/session"
)

// The media benchmarks (issue 7 of media) compare the media Engine with a
// bare pion v4 sender of the same tracks (VP8 and Opus in one stream, a
// data channel), codecs, interceptors and shared UDP port, writing the same
// samples, in the same run. Every peer is on loopback. The client peers run
// in the same process: the per-session heap figures include one client
// peer on both sides of each ratio.

const (
	mediaPending   = 50  // offers per op of MediaPendingOffer
	mediaConnected = 20  // sessions per op of MediaConnected and MediaStopped
	mediaStreams   = 100 // concurrent streams of MediaStream
	mediaStreamFor = 2 * time.Second
)

var mediaAcct = session.Account{Name: "bench-media", Plan: limits.Plan{Name: "bench", MaxConcurrent: 1 << 20}}

// memUsed is the live heap plus the goroutine stacks, after two GCs.
func memUsed() float64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc + ms.StackInuse)
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peerSide is one side of a media benchmark: streamsession's Engine or the
// bare pion sender.
type peerSide interface {
	// offer makes a session's peer and returns its handle and offer.
	offer(b *testing.B) (string, webrtc.SessionDescription)
	// start applies the answer; connected is closed when the media is up.
	start(b *testing.B, id string, answer webrtc.SessionDescription) (connected <-chan struct{})
	// stop ends the session and its peer.
	stop(b *testing.B, id string)
	close()
}

// engineSide is the media Engine over a Manager.
type engineSide struct {
	lim *limits.Memory
	mgr *session.Manager
	eng *media.Engine

	mu        sync.Mutex
	connected map[string]chan struct{}
	cancel    func()
}

func newEngineSide(b *testing.B) *engineSide {
	s := &engineSide{lim: limits.NewMemory(limits.MemoryConfig{}), connected: map[string]chan struct{}{}}
	var err error
	s.mgr, err = session.NewManager(session.Config{Limiter: s.lim, Avatars: benchAvatars})
	if err != nil {
		b.Fatal(err)
	}
	s.cancel = s.mgr.Subscribe(func(e session.Event) {
		if e.To != fsm.Connected {
			return
		}
		s.mu.Lock()
		if c := s.connected[e.SessionID]; c != nil {
			close(c)
			delete(s.connected, e.SessionID)
		}
		s.mu.Unlock()
	})
	if s.eng, err = media.New(s.mgr, media.Config{}); err != nil {
		b.Fatal(err)
	}
	return s
}

func (s *engineSide) offer(b *testing.B) (string, webrtc.SessionDescription) {
	ctx := context.Background()
	info, err := s.mgr.Create(ctx, mediaAcct, session.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	o, err := s.eng.Offer(ctx, mediaAcct.Name, info.ID)
	if err != nil {
		b.Fatal(err)
	}
	return info.ID, o
}

func (s *engineSide) start(b *testing.B, id string, answer webrtc.SessionDescription) <-chan struct{} {
	c := make(chan struct{})
	s.mu.Lock()
	s.connected[id] = c
	s.mu.Unlock()
	if _, err := s.eng.Start(context.Background(), mediaAcct.Name, id, answer); err != nil {
		b.Fatal(err)
	}
	return c
}

func (s *engineSide) stop(b *testing.B, id string) {
	if _, err := s.mgr.Stop(context.Background(), mediaAcct.Name, id); err != nil {
		b.Fatal(err)
	}
}

func (s *engineSide) close() {
	_ = s.mgr.Close(context.Background())
	s.cancel()
	_ = s.eng.Close()
	_ = s.lim.Close()
}

// bareSide is the baseline: pion peers made as the Engine makes them, each
// writing the same clips with a ticker, and nothing else.
type bareSide struct {
	api  *webrtc.API
	conn net.PacketConn
	clip media.ClipSource

	mu    sync.Mutex
	peers map[string]*barePeer
	n     int
}

type barePeer struct {
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticSample
	connected    chan struct{}
	stop         chan struct{}
	done         chan struct{}
	once         sync.Once
}

func newBareSide(b *testing.B) *bareSide {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	m := &webrtc.MediaEngine{}
	_ = m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}, webrtc.RTPCodecTypeVideo)
	_ = m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio)
	ir := &interceptor.Registry{}
	_ = webrtc.ConfigureNack(m, ir)
	_ = webrtc.ConfigureRTCPReports(ir)
	se := webrtc.SettingEngine{LoggerFactory: &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled}}
	se.SetICEUDPMux(webrtc.NewICEUDPMux(se.LoggerFactory.NewLogger("ice"), conn))
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetPrflxAcceptanceMinWait(0)
	se.SetIncludeLoopbackCandidate(true)
	se.SetRemoteIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return &bareSide{api: api, conn: conn, clip: media.SyntheticAvatar().(media.ClipSource), peers: map[string]*barePeer{}}
}

func (s *bareSide) offer(b *testing.B) (string, webrtc.SessionDescription) {
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	p := &barePeer{pc: pc, connected: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	p.video, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "avatar")
	p.audio, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "avatar")
	for _, t := range []webrtc.TrackLocal{p.video, p.audio} {
		if _, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pc.CreateDataChannel("events", nil); err != nil {
		b.Fatal(err)
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			p.once.Do(func() {
				close(p.connected)
				go p.play(s.clip.Idle)
			})
		}
	})
	o, _ := pc.CreateOffer(nil)
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		b.Fatal(err)
	}
	<-gathered
	s.mu.Lock()
	s.n++
	id := fmt.Sprint(s.n)
	s.peers[id] = p
	s.mu.Unlock()
	return id, *pc.LocalDescription()
}

// play writes the clip as the Engine's player does: an audio packet every
// 20 ms, the video frames due with it.
func (p *barePeer) play(c media.Clip) {
	defer close(p.done)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var ai, vi int
	var at, vt time.Duration
	for {
		a := c.Audio[ai%len(c.Audio)]
		if p.audio.WriteSample(pionmedia.Sample{Data: a.Data, Duration: a.Duration}) != nil {
			return
		}
		ai++
		at += a.Duration
		for vt < at {
			v := c.Video[vi%len(c.Video)]
			if p.video.WriteSample(pionmedia.Sample{Data: v.Data, Duration: v.Duration}) != nil {
				return
			}
			vi++
			vt += v.Duration
		}
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

func (s *bareSide) start(b *testing.B, id string, answer webrtc.SessionDescription) <-chan struct{} {
	s.mu.Lock()
	p := s.peers[id]
	s.mu.Unlock()
	if err := p.pc.SetRemoteDescription(answer); err != nil {
		b.Fatal(err)
	}
	return p.connected
}

func (s *bareSide) stop(_ *testing.B, id string) {
	s.mu.Lock()
	p := s.peers[id]
	delete(s.peers, id)
	s.mu.Unlock()
	close(p.stop)
	_ = p.pc.Close()
	select {
	case <-p.connected:
		<-p.done
	default:
	}
}

func (s *bareSide) close() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.peers))
	for id := range s.peers {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.stop(nil, id)
	}
	_ = s.conn.Close()
}

var sides = []struct {
	name string
	make func(*testing.B) peerSide
}{
	{"bare", func(b *testing.B) peerSide { return newBareSide(b) }},
	{"streamsession", func(b *testing.B) peerSide { return newEngineSide(b) }},
}

// clientAPI is the client peers' API.
func clientAPI(b *testing.B) *webrtc.API {
	api, err := mediatest.LoopbackAPI()
	if err != nil {
		b.Fatal(err)
	}
	return api
}

// connectN connects n sessions with client peers, returning their ids,
// their clients and each start → connected latency.
func connectN(b *testing.B, side peerSide, api *webrtc.API, n int) ([]string, []*mediatest.Client, []time.Duration) {
	ids := make([]string, n)
	clients := make([]*mediatest.Client, n)
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		id, offer := side.offer(b)
		c, ans, err := mediatest.Answer(api, offer)
		if err != nil {
			b.Fatal(err)
		}
		ids[i], clients[i] = id, c
		t0 := time.Now()
		up := side.start(b, id, ans)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-up:
				lat[i] = time.Since(t0)
			case <-time.After(30 * time.Second):
				lat[i] = -1
			}
		}()
	}
	wg.Wait()
	for i, l := range lat {
		if l < 0 {
			b.Fatalf("session %d never connected", i)
		}
	}
	return ids, clients, lat
}

func closeClients(clients []*mediatest.Client) {
	for _, c := range clients {
		_ = c.PC.Close()
	}
}

// BenchmarkMediaPendingOffer measures a pending offer (peer made, no
// answer): heap and goroutine stacks per offer, and the time to make one.
func BenchmarkMediaPendingOffer(b *testing.B) {
	for _, sd := range sides {
		b.Run(sd.name, func(b *testing.B) {
			side := sd.make(b)
			defer side.close()
			var per float64
			for b.Loop() {
				before := memUsed()
				ids := make([]string, mediaPending)
				for i := range ids {
					ids[i], _ = side.offer(b)
				}
				b.StopTimer()
				per = (memUsed() - before) / mediaPending
				for _, id := range ids {
					side.stop(b, id)
				}
				b.StartTimer()
			}
			b.ReportMetric(per, "B/offer")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*mediaPending)/1e6, "ms/offer")
		})
	}
}

// BenchmarkMediaConnected measures connected sessions (with their client
// peers, in this process): heap and stacks per session, and start →
// connected latency on loopback.
func BenchmarkMediaConnected(b *testing.B) {
	for _, sd := range sides {
		b.Run(sd.name, func(b *testing.B) {
			side := sd.make(b)
			defer side.close()
			api := clientAPI(b)
			var per float64
			var all []time.Duration
			for b.Loop() {
				before := memUsed()
				ids, clients, lat := connectN(b, side, api, mediaConnected)
				b.StopTimer()
				per = (memUsed() - before) / mediaConnected
				all = append(all, lat...)
				for _, id := range ids {
					side.stop(b, id)
				}
				closeClients(clients)
				b.StartTimer()
			}
			slices.Sort(all)
			b.ReportMetric(per, "B/session")
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkMediaStream measures the CPU of mediaStreams concurrent streams
// for mediaStreamFor (the process's CPU time, client peers included, per
// stream-second).
func BenchmarkMediaStream(b *testing.B) {
	for _, sd := range sides {
		b.Run(sd.name, func(b *testing.B) {
			side := sd.make(b)
			defer side.close()
			api := clientAPI(b)
			var per float64
			for b.Loop() {
				b.StopTimer()
				ids, clients, _ := connectN(b, side, api, mediaStreams)
				time.Sleep(200 * time.Millisecond) // let the connection setup settle
				b.StartTimer()
				c0 := cpuTime()
				time.Sleep(mediaStreamFor) // the measure is CPU over a fixed wall time
				per = float64((cpuTime() - c0).Microseconds()) / 1000 / (mediaStreams * mediaStreamFor.Seconds())
				b.StopTimer()
				for _, id := range ids {
					side.stop(b, id)
				}
				closeClients(clients)
				b.StartTimer()
			}
			b.ReportMetric(per, "cpu-ms/stream-s")
		})
	}
}

// BenchmarkMediaStopped measures what stopped media sessions leave on the
// heap: after one round to warm pools and maps up, every op connects
// mediaConnected sessions, stops them and waits for their peers to close;
// the figure is the growth of heap and stacks over all the ops, per
// session. A closed session's record stays for the Manager's retention (10
// minutes by default) and is counted.
func BenchmarkMediaStopped(b *testing.B) {
	side := newEngineSide(b)
	defer side.close()
	api := clientAPI(b)
	round := func() {
		ids, clients, _ := connectN(b, side, api, mediaConnected)
		for _, id := range ids {
			side.stop(b, id)
		}
		closeClients(clients)
		for _, id := range ids {
			for side.eng.Has(id) {
				time.Sleep(time.Millisecond)
			}
		}
	}
	round()
	time.Sleep(100 * time.Millisecond) // pion's goroutines end after Close returns
	before := memUsed()
	n := 0
	for b.Loop() {
		round()
		n += mediaConnected
	}
	time.Sleep(100 * time.Millisecond)
	b.ReportMetric((memUsed()-before)/float64(n), "B/stopped")
}
