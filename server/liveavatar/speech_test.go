package liveavatar

import (
	"encoding/json"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server/realtime"
)

// heard is one speech event and when (in the bubble's time) it came.
type heard struct {
	Type    string
	EventID string
	TaskID  string
	At      time.Duration
}

type recorder struct {
	t0 time.Time
	mu sync.Mutex
	ev []heard
}

func (r *recorder) emit(b []byte) {
	var m speechMessage
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ev = append(r.ev, heard{Type: m.Type, EventID: m.EventID, TaskID: m.Task.ID, At: time.Since(r.t0)})
}

func (r *recorder) events() []heard {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]heard(nil), r.ev...)
	for i := range out {
		out[i].TaskID = "" // checked apart: random
	}
	return out
}

// TestSpeechTimeline checks that utterances play one after the other, each
// for its audio's duration, counted from when it started playing.
func TestSpeechTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{t0: time.Now()}
		s := newSpeech(realtime.RealClock{}, rec.emit)
		defer s.close()

		s.speak("a", 400*time.Millisecond) // the web SDK: 400 ms first …
		s.speak("a", time.Second)          // … then 1 s chunks
		time.Sleep(300 * time.Millisecond)
		s.speak("b-ignored", 600*time.Millisecond) // a chunk with another id joins the open utterance
		require.True(t, s.end())
		s.speak("c", time.Second) // queued behind a
		require.True(t, s.end())
		assert.False(t, s.end(), "no utterance open")
		time.Sleep(10 * time.Second)
		synctest.Wait()

		assert.Equal(t, []heard{
			{Type: "agent.speak_started", EventID: "a", At: 0},
			{Type: "agent.speak_ended", EventID: "a", At: 2 * time.Second},
			{Type: "agent.speak_started", EventID: "c", At: 2 * time.Second},
			{Type: "agent.speak_ended", EventID: "c", At: 3 * time.Second},
		}, rec.events())
		assert.Equal(t, rec.ev[0].TaskID, rec.ev[1].TaskID, "one task per utterance")
		assert.NotEqual(t, rec.ev[1].TaskID, rec.ev[2].TaskID)
	})
}

// TestSpeechEndAfterAudio checks that an utterance whose speak_end comes
// after its audio would have played ends at once.
func TestSpeechEndAfterAudio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{t0: time.Now()}
		s := newSpeech(realtime.RealClock{}, rec.emit)
		defer s.close()
		s.speak("a", time.Second)
		time.Sleep(5 * time.Second)
		assert.Len(t, rec.events(), 1, "no end before agent.speak_end")
		s.end()
		synctest.Wait()
		assert.Equal(t, []heard{
			{Type: "agent.speak_started", EventID: "a", At: 0},
			{Type: "agent.speak_ended", EventID: "a", At: 5 * time.Second},
		}, rec.events())
	})
}

// TestSpeechInterrupt checks that an interrupt ends the utterance playing
// and drops those waiting.
func TestSpeechInterrupt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{t0: time.Now()}
		s := newSpeech(realtime.RealClock{}, rec.emit)
		defer s.close()
		s.speak("a", 10*time.Second)
		s.end()
		s.speak("b", 10*time.Second)
		s.end()
		time.Sleep(time.Second)
		assert.True(t, s.interrupt())
		assert.False(t, s.interrupt(), "nothing left to interrupt")
		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Equal(t, []heard{
			{Type: "agent.speak_started", EventID: "a", At: 0},
			{Type: "agent.speak_interrupted", EventID: "a", At: time.Second},
		}, rec.events())

		// Speech goes on after an interrupt; close silences it.
		s.speak("d", time.Second)
		s.close()
		time.Sleep(time.Minute)
		assert.Len(t, rec.events(), 3)
		assert.Equal(t, "d", rec.events()[2].EventID)
	})
}

func TestAudioDuration(t *testing.T) {
	assert.Equal(t, time.Second, AudioDuration(48000))
	assert.Equal(t, 400*time.Millisecond, AudioDuration(19200))
	assert.Equal(t, time.Duration(0), AudioDuration(0))
}
