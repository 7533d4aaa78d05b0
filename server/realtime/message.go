package realtime

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// Message types on the realtime socket.
const (
	// TypeSpeak (client → server) asks the avatar to speak Text.
	TypeSpeak = "agent.speak"
	// TypeInterrupt (client → server) stops the current speech.
	TypeInterrupt = "agent.interrupt"
	// TypeKeepAlive (client → server) resets the session's idle deadline.
	TypeKeepAlive = "session.keep_alive"

	// TypeStateUpdated (server → client) carries the session's state.
	TypeStateUpdated = "session.state_updated"
	// TypeStartTalking (server → client): the avatar starts speaking a task.
	TypeStartTalking = "avatar_start_talking"
	// TypeStopTalking (server → client): the avatar stopped speaking a task.
	TypeStopTalking = "avatar_stop_talking"
	// TypeError (server → client): a client message was refused.
	TypeError = "error"
)

// ClientMessage is one message a client sends on the realtime socket. It is
// a plain value, safe to copy.
type ClientMessage struct {
	// Type is TypeSpeak, TypeInterrupt or TypeKeepAlive.
	Type string `json:"type"`
	// Text is what to speak; set for TypeSpeak only.
	Text string `json:"text,omitempty"`
}

// DecodeClientMessage parses one text frame from a client. It accepts
// exactly {"type":"agent.speak","text":"<non-empty>"},
// {"type":"agent.interrupt"} and {"type":"session.keep_alive"} (other fields
// are ignored) and returns [sserrors.ErrInvalidParameter] (400175) for
// anything else: malformed JSON, a value that is not an object, an unknown or
// missing type, a field of the wrong type, trailing data, or agent.speak
// without text. It never panics.
func DecodeClientMessage(data []byte) (ClientMessage, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ClientMessage{}, sserrors.ErrInvalidParameter
	}
	var raw struct {
		Type *string `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(trimmed, &raw); err != nil || raw.Type == nil {
		return ClientMessage{}, sserrors.ErrInvalidParameter
	}
	switch *raw.Type {
	case TypeSpeak:
		if raw.Text == nil || strings.TrimSpace(*raw.Text) == "" {
			return ClientMessage{}, sserrors.ErrInvalidParameter
		}
		return ClientMessage{Type: TypeSpeak, Text: *raw.Text}, nil
	case TypeInterrupt, TypeKeepAlive:
		return ClientMessage{Type: *raw.Type}, nil
	}
	return ClientMessage{}, sserrors.ErrInvalidParameter
}

// ServerMessage is any message the server sends on the realtime socket, for
// clients to decode. Every message carries EventType equal to Type (HeyGen's
// SDK 2.x reads event_type). Which other fields are set depends on Type:
//
//   - TypeStateUpdated: State ("new", "connecting", "connected", "closing",
//     "closed") and, for closing and closed, Reason: why the session ends
//     ("stop", "idle", "duration", "join", "shutdown", "lease_lost", ...: the
//     names of session.Reason).
//   - TypeStartTalking: TaskID, DurationMS (how long the text takes).
//   - TypeStopTalking: TaskID, DurationMS (how long the avatar actually
//     spoke) and Interrupted (true when cut short by an interrupt, a newer
//     task or the session closing).
//   - TypeError: Code and Message, as in the HTTP error body.
//
// It is a plain value, safe to copy.
type ServerMessage struct {
	Type        string        `json:"type"`
	EventType   string        `json:"event_type"`
	State       string        `json:"state,omitempty"`
	Reason      string        `json:"reason,omitempty"`
	TaskID      string        `json:"task_id,omitempty"`
	DurationMS  int64         `json:"duration_ms,omitempty"`
	Interrupted bool          `json:"interrupted,omitempty"`
	Code        sserrors.Code `json:"code,omitempty"`
	Message     string        `json:"message,omitempty"`
}

// The exact shapes the server writes (field order and presence are part of
// the wire contract, so they are not derived from ServerMessage).
type (
	stateMessage struct {
		Type      string `json:"type"`
		EventType string `json:"event_type"`
		State     string `json:"state"`
		Reason    string `json:"reason,omitempty"`
	}
	startTalkingMessage struct {
		Type       string `json:"type"`
		EventType  string `json:"event_type"`
		TaskID     string `json:"task_id"`
		DurationMS int64  `json:"duration_ms"`
	}
	stopTalkingMessage struct {
		Type        string `json:"type"`
		EventType   string `json:"event_type"`
		TaskID      string `json:"task_id"`
		DurationMS  int64  `json:"duration_ms"`
		Interrupted bool   `json:"interrupted"`
	}
	errorMessage struct {
		Type      string        `json:"type"`
		EventType string        `json:"event_type"`
		Code      sserrors.Code `json:"code"`
		Message   string        `json:"message"`
	}
)

func marshalMessage(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every message type above marshals: only strings, numbers and bools.
		panic("realtime: marshal message: " + err.Error())
	}
	return b
}

// encodeState encodes session.state_updated; the reason is sent with
// closing and closed only.
func encodeState(state fsm.State, reason session.Reason) []byte {
	m := stateMessage{Type: TypeStateUpdated, EventType: TypeStateUpdated, State: state.String()}
	if state >= fsm.Closing && reason != session.ReasonNone {
		m.Reason = reason.String()
	}
	return marshalMessage(m)
}

func encodeStartTalking(taskID string, d time.Duration) []byte {
	return marshalMessage(startTalkingMessage{Type: TypeStartTalking, EventType: TypeStartTalking, TaskID: taskID, DurationMS: d.Milliseconds()})
}

func encodeStopTalking(taskID string, spoke time.Duration, interrupted bool) []byte {
	return marshalMessage(stopTalkingMessage{Type: TypeStopTalking, EventType: TypeStopTalking, TaskID: taskID, DurationMS: spoke.Milliseconds(), Interrupted: interrupted})
}

func encodeError(err error) []byte {
	e, ok := sserrors.As(err)
	if !ok {
		e = sserrors.ErrInternalServerError
	}
	return marshalMessage(errorMessage{Type: TypeError, EventType: TypeError, Code: e.Code, Message: e.Message})
}
