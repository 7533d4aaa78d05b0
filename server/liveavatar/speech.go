package liveavatar

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/streamsession/streamsession/server/realtime"
)

// BytesPerSecond is the rate of LITE audio: PCM s16le, 24 kHz, mono.
const BytesPerSecond = 24000 * 2

// AudioDuration is how long pcm bytes of LITE audio play.
func AudioDuration(pcm int) time.Duration {
	return time.Duration(pcm) * time.Second / BytesPerSecond
}

// MaxQueuedUtterances bounds the utterances of one session playing or
// waiting to play: each plays once the one before has, so without a bound
// a client sending audio faster than it plays grows the queue for as long
// as the session lives. A chunk that would open one more is refused.
const MaxQueuedUtterances = 64

// utterance is one agent.speak … agent.speak_end group.
type utterance struct {
	eventID  string
	taskID   string
	duration time.Duration
	complete bool      // agent.speak_end received
	started  time.Time // zero until it plays
}

// speech models one session's avatar speaking the audio its LITE socket
// sends: utterances play one after the other, each for its audio's own
// duration, from when the previous one ended. Every chunk joins the
// utterance still open (not ended by agent.speak_end), whatever its
// event_id, so clients that put a fresh id on each chunk (LiveAvatar's
// Python plugin) still get one utterance; the first chunk's id names it.
// emit receives the events in order, under speech's lock, so it must not
// block. A speech is safe for concurrent use by multiple goroutines.
type speech struct {
	clock realtime.Clock
	emit  func([]byte)

	mu     sync.Mutex
	queue  []*utterance // queue[0] plays
	stopFn func() bool  // the timer ending queue[0], nil when none
	done   bool
}

func newSpeech(clock realtime.Clock, emit func([]byte)) *speech {
	return &speech{clock: clock, emit: emit}
}

// speak adds a chunk of d to the open utterance, opening one named eventID
// when there is none; a new utterance plays at once when nothing else does
// (agent.speak_started). It reports false, changing nothing, when a new
// utterance would exceed MaxQueuedUtterances; a chunk after close is
// dropped (true).
func (s *speech) speak(eventID string, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return true
	}
	var u *utterance
	if n := len(s.queue); n > 0 && !s.queue[n-1].complete {
		u = s.queue[n-1]
	} else {
		if n >= MaxQueuedUtterances {
			return false
		}
		u = &utterance{eventID: eventID, taskID: newTaskID()}
		s.queue = append(s.queue, u)
		if len(s.queue) == 1 {
			s.playLocked()
		}
	}
	u.duration += d
	return true
}

// end closes the open utterance (agent.speak_end), and reports whether
// there was one. The avatar stops speaking it once its audio has played.
func (s *speech) end() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.queue)
	if s.done || n == 0 || s.queue[n-1].complete {
		return false
	}
	s.queue[n-1].complete = true
	if n == 1 {
		s.scheduleLocked()
	}
	return true
}

// interrupt ends the utterance playing (agent.speak_interrupted) and drops
// every one waiting; it reports whether one was playing.
func (s *speech) interrupt() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || len(s.queue) == 0 {
		return false
	}
	s.stopTimerLocked()
	u := s.queue[0]
	s.queue = nil
	s.emit(speechEvent("agent.speak_interrupted", u))
	return true
}

// close drops everything; no event follows.
func (s *speech) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	s.stopTimerLocked()
	s.queue = nil
}

func (s *speech) stopTimerLocked() {
	if s.stopFn != nil {
		s.stopFn()
		s.stopFn = nil
	}
}

// playLocked starts queue[0].
func (s *speech) playLocked() {
	u := s.queue[0]
	u.started = s.clock.Now()
	s.emit(speechEvent("agent.speak_started", u))
	if u.complete {
		s.scheduleLocked()
	}
}

// scheduleLocked sets the timer that ends queue[0], complete and playing,
// when its audio has played.
func (s *speech) scheduleLocked() {
	u := s.queue[0]
	left := u.started.Add(u.duration).Sub(s.clock.Now())
	s.stopFn = s.clock.AfterFunc(max(left, 0), func() { s.finished(u) })
}

// finished ends u (agent.speak_ended) and plays the next utterance.
func (s *speech) finished(u *utterance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || len(s.queue) == 0 || s.queue[0] != u {
		return // interrupted meanwhile
	}
	s.stopFn = nil
	s.queue = s.queue[1:]
	s.emit(speechEvent("agent.speak_ended", u))
	if len(s.queue) > 0 {
		s.playLocked()
	}
}

type speechMessage struct {
	Type    string `json:"type"`
	EventID string `json:"event_id"`
	Task    struct {
		ID string `json:"id"`
	} `json:"task"`
}

func speechEvent(typ string, u *utterance) []byte {
	m := speechMessage{Type: typ, EventID: u.eventID}
	m.Task.ID = u.taskID
	b, _ := json.Marshal(m) // strings only: always marshals
	return b
}

// newTaskID returns a random UUID (version 4) for a task.
func newTaskID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
