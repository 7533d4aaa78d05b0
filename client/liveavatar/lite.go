package liveavatar

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/gorilla/websocket"
)

// BytesPerSecond is the rate of LITE audio: PCM s16le, 24 kHz, mono.
const BytesPerSecond = 24000 * 2

// Message is one message the server sends on the LITE socket (LiveAvatar
// calls them events; the name Message keeps them apart from session.Event,
// a session's transition, and client.Event, a decoded realtime event). A
// Message is a plain value, safe to copy.
type Message struct {
	// Type is "session.state_updated", "agent.speak_started",
	// "agent.speak_ended", "agent.speak_interrupted" or "error".
	Type string `json:"type"`
	// State and Reason are set on session.state_updated (Reason on
	// closing and closed: "USER_CLOSED", "IDLE_TIMEOUT", ...).
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	// EventID names the utterance of a speech event, or the message an
	// error answers.
	EventID string `json:"event_id,omitempty"`
	Task    *struct {
		ID string `json:"id"`
	} `json:"task,omitempty"`
	Error *struct {
		Type    string `json:"type"`
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Event is the former name of Message.
//
// Deprecated: use Message.
type Event = Message

// Lite is a session's LITE socket. Events delivers what the server sends,
// in order, and closes when the socket does. It is safe for concurrent use
// by multiple goroutines.
type Lite struct {
	ws     *websocket.Conn
	events chan Message
	done   chan struct{}

	mu sync.Mutex // serialises writes
}

// Connect opens the LITE socket at wsURL (from Start). The session becomes
// connected; the first events are session.state_updated connecting and
// connected.
func (s *Session) Connect(ctx context.Context, wsURL string) (*Lite, error) {
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, wsURL, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("liveavatar: LITE socket refused with HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("liveavatar: LITE socket: %w", err)
	}
	l := &Lite{ws: ws, events: make(chan Message, 64), done: make(chan struct{})}
	go l.read()
	return l, nil
}

func (l *Lite) read() {
	defer close(l.done)
	defer close(l.events)
	for {
		_, data, err := l.ws.ReadMessage()
		if err != nil {
			return
		}
		var e Message
		if json.Unmarshal(data, &e) == nil {
			l.events <- e
		}
	}
}

// Events returns the channel of the socket's messages.
func (l *Lite) Events() <-chan Message { return l.events }

func (l *Lite) send(v any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ws.WriteJSON(v)
}

// Speak sends one utterance of PCM s16le 24 kHz mono audio under eventID:
// agent.speak frames of at most one second each, then agent.speak_end. The
// server answers agent.speak_started, then agent.speak_ended once the
// audio has played.
func (l *Lite) Speak(eventID string, pcm []byte) error {
	for off := 0; off < len(pcm); off += BytesPerSecond {
		chunk := pcm[off:min(off+BytesPerSecond, len(pcm))]
		if err := l.send(map[string]string{"type": "agent.speak", "event_id": eventID, "audio": base64.StdEncoding.EncodeToString(chunk)}); err != nil {
			return err
		}
	}
	return l.send(map[string]string{"type": "agent.speak_end", "event_id": eventID})
}

// Interrupt stops the avatar's speech (agent.speak_interrupted).
func (l *Lite) Interrupt(eventID string) error {
	return l.send(map[string]string{"type": "agent.interrupt", "event_id": eventID})
}

// StartListening and StopListening tell the avatar to show (or stop
// showing) that it listens.
func (l *Lite) StartListening(eventID string) error {
	return l.send(map[string]string{"type": "agent.start_listening", "event_id": eventID})
}

// StopListening: see StartListening.
func (l *Lite) StopListening(eventID string) error {
	return l.send(map[string]string{"type": "agent.stop_listening", "event_id": eventID})
}

// KeepAlive pushes back the session's idle timeout over the socket.
func (l *Lite) KeepAlive(eventID string) error {
	return l.send(map[string]string{"type": "session.keep_alive", "event_id": eventID})
}

// Close closes the socket (the session stays connected until it is
// stopped or idles out) and waits for the reader to end.
func (l *Lite) Close() error {
	l.mu.Lock()
	_ = l.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	l.mu.Unlock()
	err := l.ws.Close()
	for range l.events {
	}
	<-l.done
	return err
}
