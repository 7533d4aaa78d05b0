package media

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Sample is one encoded media frame: a VP8 frame or an Opus packet, and how
// long it plays. A Sample is a plain value; Data must not be changed once
// written.
type Sample struct {
	Data     []byte
	Duration time.Duration
}

// Output is where a Player writes a session's media: its VP8 video track and
// its Opus audio track (one media stream). Its methods are safe for
// concurrent use by multiple goroutines; they fail once the peer is closed.
type Output interface {
	WriteVideo(Sample) error
	WriteAudio(Sample) error
}

// Source renders the avatar: a backend plugs in its own renderer by
// implementing it. The Engine asks it for one Player per session when the
// session's peer connects. A Source is used by many sessions at once: it
// must be safe for concurrent use by multiple goroutines.
type Source interface {
	// NewPlayer starts playing idle media to out and returns the session's
	// Player. The Player paces its own writes (real time).
	NewPlayer(out Output) Player
}

// Player plays one session's avatar. Its methods are safe for concurrent
// use by multiple goroutines.
type Player interface {
	// Talking switches between the talking media (true: a task is spoken)
	// and the idle media (false: no task, or an interrupt). The Engine
	// times the speech and sends the talking events; the Player only
	// changes what plays.
	Talking(on bool)
	// Close stops the player: no write starts after it returns. Calling it
	// again does nothing.
	Close()
}

//go:embed avatar/idle.ivf avatar/talk.ivf avatar/idle.ogg avatar/talk.ogg
var avatarFiles embed.FS

// Clip is an encoded clip played in a loop: VP8 frames and Opus packets
// with the duration of each. A Clip is read-only once made and safe to
// share between goroutines.
type Clip struct {
	Video []Sample
	Audio []Sample
}

// ReadClip reads a clip from an IVF file of VP8 frames and an Ogg file of
// Opus packets (one packet per page), the formats ffmpeg writes with
// -f ivf and -f ogg -page_duration 20000.
func ReadClip(ivf, ogg io.Reader) (Clip, error) {
	var c Clip
	vr, vh, err := ivfreader.NewWith(ivf)
	if err != nil {
		return Clip{}, fmt.Errorf("media: ivf: %w", err)
	}
	if vh.TimebaseDenominator == 0 || vh.TimebaseNumerator == 0 {
		return Clip{}, errors.New("media: ivf: no timebase")
	}
	frame := time.Duration(float64(time.Second) * float64(vh.TimebaseNumerator) / float64(vh.TimebaseDenominator))
	for {
		data, _, err := vr.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Clip{}, fmt.Errorf("media: ivf: %w", err)
		}
		c.Video = append(c.Video, Sample{Data: data, Duration: frame})
	}
	ar, _, err := oggreader.NewWith(ogg)
	if err != nil {
		return Clip{}, fmt.Errorf("media: ogg: %w", err)
	}
	for {
		data, _, err := ar.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Clip{}, fmt.Errorf("media: ogg: %w", err)
		}
		if bytes.HasPrefix(data, []byte("OpusTags")) || len(data) == 0 {
			continue
		}
		d := opusDuration(data)
		if d == 0 {
			return Clip{}, errors.New("media: ogg: a packet that is not Opus")
		}
		c.Audio = append(c.Audio, Sample{Data: data, Duration: d})
	}
	if len(c.Video) == 0 || len(c.Audio) == 0 {
		return Clip{}, errors.New("media: clip without video or audio")
	}
	return c, nil
}

// opusDuration returns how long an Opus packet plays, from its TOC byte
// (RFC 6716 3.1), or 0 for a packet too short to have one.
func opusDuration(packet []byte) time.Duration {
	if len(packet) == 0 {
		return 0
	}
	config := packet[0] >> 3
	var frame time.Duration
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = [...]time.Duration{10, 20, 40, 60}[config%4] * time.Millisecond
	case config < 16: // Hybrid: 10, 20 ms
		frame = [...]time.Duration{10, 20}[config%2] * time.Millisecond
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [...]time.Duration{2500, 5000, 10000, 20000}[config%4] * time.Microsecond
	}
	switch packet[0] & 3 {
	case 0:
		return frame
	case 1, 2:
		return 2 * frame
	}
	if len(packet) < 2 {
		return 0
	}
	return time.Duration(packet[1]&0x3f) * frame
}

var (
	avatarOnce       sync.Once
	avatarIdle, talk Clip
	avatarErr        error
)

func builtinClips() (idle, talking Clip, err error) {
	avatarOnce.Do(func() {
		read := func(name string) (Clip, error) {
			v, err := avatarFiles.ReadFile("avatar/" + name + ".ivf")
			if err != nil {
				return Clip{}, err
			}
			a, err := avatarFiles.ReadFile("avatar/" + name + ".ogg")
			if err != nil {
				return Clip{}, err
			}
			return ReadClip(bytes.NewReader(v), bytes.NewReader(a))
		}
		if avatarIdle, avatarErr = read("idle"); avatarErr == nil {
			talk, avatarErr = read("talk")
		}
	})
	return avatarIdle, talk, avatarErr
}

// SyntheticAvatar returns the built-in avatar: a drawn face, still and
// silent when idle, its mouth moving to a tone while talking (VP8 320×240 at
// 25 fps, Opus 48 kHz stereo; see avatar/make.sh). It is for demos and
// tests.
func SyntheticAvatar() Source {
	idle, talking, err := builtinClips()
	if err != nil {
		panic("media: the embedded avatar does not parse: " + err.Error()) // a build defect, caught by the tests
	}
	return ClipSource{Idle: idle, Talking: talking}
}

// ClipSource is a Source that loops two clips: Idle, and Talking while a
// task is spoken. Each switch starts the other clip from its first frame,
// which must be a key frame. Every session's Player runs one goroutine that
// writes an audio packet and, when due, a video frame on each audio tick.
// A ClipSource is a plain value, safe for concurrent use.
type ClipSource struct {
	Idle, Talking Clip
}

// NewPlayer starts the session's player goroutine.
func (s ClipSource) NewPlayer(out Output) Player {
	p := &clipPlayer{src: s, out: out, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

type clipPlayer struct {
	src     ClipSource
	out     Output
	talking atomic.Bool
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func (p *clipPlayer) Talking(on bool) { p.talking.Store(on) }

func (p *clipPlayer) Close() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

// run paces the clip in real time: audio packets drive the clock, and the
// video frames due by then are written with them.
func (p *clipPlayer) run() {
	defer close(p.done)
	tick := p.src.Idle.Audio[0].Duration
	t := time.NewTicker(tick)
	defer t.Stop()
	var (
		talking      bool
		clip         = p.src.Idle
		ai, vi       int
		audioT, vidT time.Duration
	)
	for {
		if on := p.talking.Load(); on != talking {
			talking = on
			clip = p.src.Idle
			if on {
				clip = p.src.Talking
			}
			ai, vi, audioT, vidT = 0, 0, 0, 0
		}
		a := clip.Audio[ai%len(clip.Audio)]
		if p.out.WriteAudio(a) != nil {
			return
		}
		ai++
		audioT += a.Duration
		for vidT < audioT {
			v := clip.Video[vi%len(clip.Video)]
			if p.out.WriteVideo(v) != nil {
				return
			}
			vi++
			vidT += v.Duration
		}
		if ai%len(clip.Audio) == 0 && vi%len(clip.Video) == 0 {
			// Both loops restart together: keep the clocks small.
			audioT, vidT = 0, 0
		}
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}
