package realtime

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDefaultTaskDuration(t *testing.T) {
	tests := []struct {
		text string
		want time.Duration
	}{
		{"", MinSpeech},
		{"hi", MinSpeech},
		{"1234567", MinSpeech},               // 490 ms
		{"12345678", 560 * time.Millisecond}, // 8 characters
		{"Hello, world", 770 * time.Millisecond},
		{"  spaced \t out\n", 630 * time.Millisecond}, // 9 characters: white space is free
		{"こんにちは世界です", 630 * time.Millisecond},         // 9 runes, not bytes
		{strings.Repeat("a", 1000), 70 * time.Second},
		{strings.Repeat("a", 100000), time.Hour}, // capped
	}
	for _, tt := range tests {
		name := tt.text
		if len(name) > 20 {
			name = name[:20] + "…"
		}
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.want, DefaultTaskDuration(tt.text))
		})
	}
}

func TestSpeakerAfterClose(t *testing.T) {
	clock := newFakeClock()
	var emitted []string
	sp := newSpeaker(clock, DefaultTaskDuration, func(id string, msg []byte) { emitted = append(emitted, string(msg)) })
	_, _ = sp.speak("s1", "hello")
	assert.Len(t, emitted, 1)
	sp.close()
	assert.Equal(t, 0, clock.Pending(), "close stops the timers")
	id, d := sp.speak("s1", "hello")
	assert.NotEmpty(t, id)
	assert.Equal(t, MinSpeech, d)
	clock.Advance(time.Hour)
	assert.Len(t, emitted, 1, "nothing is emitted after close")
}

func TestNewTaskID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newTaskID()
		assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, id)
		assert.False(t, seen[id])
		seen[id] = true
	}
}
