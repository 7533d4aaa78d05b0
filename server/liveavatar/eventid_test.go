package liveavatar_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/streamsession/streamsession/server/liveavatar"
)

// TestSocketEventIDBounded checks that an event_id longer than
// MaxEventIDBytes is refused with an error event that does not echo it,
// and starts no speech: the server keeps and echoes event ids, so an
// unbounded one let a client make it hold and resend a megabyte a message.
func TestSocketEventIDBounded(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}
	_, _, ws, _ := connected(t, c)

	long := strings.Repeat("x", liveavatar.MaxEventIDBytes+1)
	ws.send(map[string]any{"type": "agent.speak", "event_id": long, "audio": pcm(time.Second)})
	e := ws.next()
	assert.Equal(t, "error", e.Type)
	assert.Equal(t, "invalid_request_error", e.Error.Type)
	assert.Empty(t, e.EventID, "the over-long id is not echoed")

	ok := strings.Repeat("y", liveavatar.MaxEventIDBytes)
	ws.send(map[string]any{"type": "agent.speak", "event_id": ok, "audio": pcm(time.Second)})
	e = ws.next()
	assert.Equal(t, "agent.speak_started", e.Type, "the refused chunk opened no utterance")
	assert.Equal(t, ok, e.EventID)
}
