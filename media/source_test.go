package media_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/media"
)

// vp8Size reads the width and height of a VP8 key frame (RFC 6386 9.1), and
// reports false for an inter frame.
func vp8Size(frame []byte) (w, h int, key bool) {
	if len(frame) < 10 || frame[0]&1 != 0 || frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0, false
	}
	return int(frame[6]) | int(frame[7]&0x3f)<<8, int(frame[8]) | int(frame[9]&0x3f)<<8, true
}

func TestBuiltinAvatarClips(t *testing.T) {
	var total int64
	for _, name := range []string{"idle.ivf", "talk.ivf", "idle.ogg", "talk.ogg"} {
		fi, err := os.Stat(filepath.Join("avatar", name))
		require.NoError(t, err)
		total += fi.Size()
	}
	assert.LessOrEqual(t, total, int64(2<<20), "the embedded avatar is at most 2 MiB")

	src, ok := media.SyntheticAvatar().(media.ClipSource)
	require.True(t, ok)
	avgAudio := map[string]float64{}
	for name, clip := range map[string]media.Clip{"idle": src.Idle, "talk": src.Talking} {
		w, h, key := vp8Size(clip.Video[0].Data)
		require.True(t, key, "%s starts with a key frame", name)
		assert.GreaterOrEqual(t, w, 320, name)
		assert.GreaterOrEqual(t, h, 240, name)
		for _, f := range clip.Video {
			assert.LessOrEqual(t, f.Duration, time.Second/15, "%s: at least 15 fps", name)
		}
		var bytes int
		for _, a := range clip.Audio {
			assert.Equal(t, 20*time.Millisecond, a.Duration, "%s: 20 ms Opus packets", name)
			bytes += len(a.Data)
		}
		avgAudio[name] = float64(bytes) / float64(len(clip.Audio))
	}
	// Opus codes silence in a few bytes a packet; a tone takes tens.
	assert.Less(t, avgAudio["idle"], 10.0, "idle is silent")
	assert.Greater(t, avgAudio["talk"], 40.0, "talking is audible")
}

// recorder is an Output that records what a Player writes.
type recorder struct {
	mu           sync.Mutex
	video, audio []media.Sample
	wrote        chan struct{}
}

func (r *recorder) WriteVideo(s media.Sample) error {
	r.mu.Lock()
	r.video = append(r.video, s)
	r.mu.Unlock()
	return nil
}

func (r *recorder) WriteAudio(s media.Sample) error {
	r.mu.Lock()
	r.audio = append(r.audio, s)
	r.mu.Unlock()
	select {
	case r.wrote <- struct{}{}:
	default:
	}
	return nil
}

func TestClipPlayerSwitchesClipsAtAKeyFrame(t *testing.T) {
	src := media.SyntheticAvatar().(media.ClipSource)
	rec := &recorder{wrote: make(chan struct{}, 1)}
	p := src.NewPlayer(rec)
	defer p.Close()
	<-rec.wrote
	p.Talking(true)
	// Wait until a talking audio packet is written.
	isTalk := func(s media.Sample) bool { return &s.Data[0] == &src.Talking.Audio[0].Data[0] }
	for {
		<-rec.wrote
		rec.mu.Lock()
		found := false
		for _, a := range rec.audio {
			found = found || isTalk(a)
		}
		rec.mu.Unlock()
		if found {
			break
		}
	}
	p.Close()
	p.Close() // idempotent
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Same(t, &src.Idle.Video[0].Data[0], &rec.video[0].Data[0], "idle first, from its key frame")
	switched := false
	for _, v := range rec.video {
		if &v.Data[0] == &src.Talking.Video[0].Data[0] {
			switched = true
		}
	}
	assert.True(t, switched, "talking starts from its first (key) frame")
	// Video keeps pace with audio: 25 fps against 50 packets a second.
	assert.InDelta(t, len(rec.audio)/2, len(rec.video), 2)
}
