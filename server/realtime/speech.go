package realtime

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
	"unicode"
)

// Clock tells the time and runs timers. The Hub uses it for simulated
// speech; tests inject a fake one. Implementations are safe for concurrent
// use by multiple goroutines.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless the returned
	// stop function is called first (stop reports whether it prevented the
	// call, like [time.Timer.Stop]).
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// RealClock is the Clock of package time, the default of every Clock
// setting. It has no state: safe for concurrent use.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc runs f after d, as time.AfterFunc; the function it returns
// stops the timer.
func (RealClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Speech timing of DefaultTaskDuration.
const (
	// SpeechPerCharacter is the speaking time of one character that is not
	// white space (about 14 characters a second, an average speaking pace).
	SpeechPerCharacter = 70 * time.Millisecond
	// MinSpeech is the shortest speech.
	MinSpeech = 500 * time.Millisecond
)

// DefaultTaskDuration is how long the simulated avatar speaks text:
// SpeechPerCharacter for every character that is not white space, at least
// MinSpeech and at most one hour. "Hello, world" (11 such characters) takes
// 770 ms.
func DefaultTaskDuration(text string) time.Duration {
	const maxChars = int(time.Hour / SpeechPerCharacter)
	n := 0
	for _, r := range text {
		if !unicode.IsSpace(r) {
			n++
		}
	}
	if n >= maxChars {
		return time.Hour
	}
	if d := time.Duration(n) * SpeechPerCharacter; d > MinSpeech {
		return d
	}
	return MinSpeech
}

// task is one speech in progress.
type task struct {
	id       string
	duration time.Duration
	started  time.Time
	stop     func() bool
}

// speaker simulates the avatars of the sessions on this node: at most one
// speech per session. It emits avatar_start_talking and avatar_stop_talking
// through emit. With a Relay, every node's speaker models every session's
// speech from the relay's commands, and emit reaches a socket only on the
// node holding it. Safe for concurrent use.
type speaker struct {
	clock    Clock
	duration func(string) time.Duration
	emit     func(sessionID string, msg []byte)

	mu      sync.Mutex
	current map[string]*task // by session id; only sessions speaking now
	closed  bool
}

func newSpeaker(clock Clock, duration func(string) time.Duration, emit func(string, []byte)) *speaker {
	return &speaker{clock: clock, duration: duration, emit: emit, current: make(map[string]*task)}
}

// speak starts speaking text for the session, cutting short the speech in
// progress, and returns the new task.
func (s *speaker) speak(sessionID, text string) (id string, d time.Duration) {
	d = max(s.duration(text), 0)
	id = newTaskID()
	s.start(sessionID, id, d)
	return id, d
}

// start starts task id of d for the session, cutting short the speech in
// progress. A task already in progress is not started again (a relay
// delivering one command twice).
func (s *speaker) start(sessionID, id string, d time.Duration) {
	t := &task{id: id, duration: d}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if cur, ok := s.current[sessionID]; ok && cur.id == id {
		return
	}
	s.interruptLocked(sessionID)
	t.started = s.clock.Now()
	s.current[sessionID] = t
	// The timer exists before anyone hears of the task; it cannot fire
	// before the start is emitted, since finish needs s.mu.
	t.stop = s.clock.AfterFunc(d, func() { s.finish(sessionID, t) })
	s.emit(sessionID, encodeStartTalking(t.id, d))
}

// finish ends t when its time is up, unless it was interrupted meanwhile.
func (s *speaker) finish(sessionID string, t *task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current[sessionID] != t {
		return
	}
	delete(s.current, sessionID)
	s.emit(sessionID, encodeStopTalking(t.id, t.duration, false))
}

// interrupt cuts the session's speech short; it does nothing when the avatar
// is silent.
func (s *speaker) interrupt(sessionID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interruptLocked(sessionID)
}

func (s *speaker) interruptLocked(sessionID string) {
	t, ok := s.current[sessionID]
	if !ok {
		return
	}
	delete(s.current, sessionID)
	if t.stop != nil {
		t.stop()
	}
	spoke := s.clock.Now().Sub(t.started)
	if spoke > t.duration {
		spoke = t.duration
	}
	if spoke < 0 {
		spoke = 0
	}
	s.emit(sessionID, encodeStopTalking(t.id, spoke, true))
}

// close stops every speech without events; later calls to speak emit
// nothing.
func (s *speaker) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for id, t := range s.current {
		if t.stop != nil {
			t.stop()
		}
		delete(s.current, id)
	}
}

// newTaskID returns a random UUID (version 4) for a task.
func newTaskID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
