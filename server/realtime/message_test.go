package realtime

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
)

func TestDecodeClientMessage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ClientMessage
		ok   bool
	}{
		{"speak", `{"type":"agent.speak","text":"hello"}`, ClientMessage{Type: TypeSpeak, Text: "hello"}, true},
		{"speak with extra fields", `{"type":"agent.speak","text":"hi","task_type":"repeat","x":[1]}`, ClientMessage{Type: TypeSpeak, Text: "hi"}, true},
		{"speak with leading space", " \n{\"type\":\"agent.speak\",\"text\":\" a \"}", ClientMessage{Type: TypeSpeak, Text: " a "}, true},
		{"interrupt", `{"type":"agent.interrupt"}`, ClientMessage{Type: TypeInterrupt}, true},
		{"interrupt ignores text", `{"type":"agent.interrupt","text":"x"}`, ClientMessage{Type: TypeInterrupt}, true},
		{"keep alive", `{"type":"session.keep_alive"}`, ClientMessage{Type: TypeKeepAlive}, true},
		{"empty", ``, ClientMessage{}, false},
		{"not JSON", `agent.speak`, ClientMessage{}, false},
		{"truncated", `{"type":"agent.speak","text":"hi"`, ClientMessage{}, false},
		{"trailing data", `{"type":"agent.interrupt"}{}`, ClientMessage{}, false},
		{"array", `[{"type":"agent.interrupt"}]`, ClientMessage{}, false},
		{"null", `null`, ClientMessage{}, false},
		{"string", `"agent.interrupt"`, ClientMessage{}, false},
		{"no type", `{"text":"hi"}`, ClientMessage{}, false},
		{"null type", `{"type":null}`, ClientMessage{}, false},
		{"type of the wrong kind", `{"type":1}`, ClientMessage{}, false},
		{"unknown type", `{"type":"agent.dance"}`, ClientMessage{}, false},
		{"type in another case", `{"type":"Agent.Speak","text":"hi"}`, ClientMessage{}, false},
		{"speak without text", `{"type":"agent.speak"}`, ClientMessage{}, false},
		{"speak with empty text", `{"type":"agent.speak","text":""}`, ClientMessage{}, false},
		{"speak with blank text", `{"type":"agent.speak","text":" \t"}`, ClientMessage{}, false},
		{"speak with text of the wrong kind", `{"type":"agent.speak","text":5}`, ClientMessage{}, false},
		{"server message", `{"type":"session.state_updated","state":"connected"}`, ClientMessage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeClientMessage([]byte(tt.in))
			if !tt.ok {
				assert.ErrorIs(t, err, sserrors.ErrInvalidParameter)
				assert.Equal(t, sserrors.CodeInvalidParameter, sserrors.CodeOf(err))
				assert.Equal(t, ClientMessage{}, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// FuzzDecodeClientMessage: the decoder never panics, refuses with 400175
// only, and what it accepts is one of the three messages, which encodes and
// decodes back to itself.
func FuzzDecodeClientMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"agent.speak","text":"hello"}`,
		`{"type":"agent.interrupt"}`,
		`{"type":"session.keep_alive"}`,
		`{"type":"agent.speak"}`,
		`{"type":"agent.speak","text":"\u00e9\ud83d\ude00"}`,
		`{"type":"x","text":null}`,
		`[]`, `null`, `{`, ``, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := DecodeClientMessage(data)
		if err != nil {
			if sserrors.CodeOf(err) != sserrors.CodeInvalidParameter {
				t.Fatalf("DecodeClientMessage(%q) error code = %d, want 400175", data, sserrors.CodeOf(err))
			}
			if msg != (ClientMessage{}) {
				t.Fatalf("DecodeClientMessage(%q) = %+v with an error, want the zero message", data, msg)
			}
			return
		}
		switch msg.Type {
		case TypeSpeak:
			if msg.Text == "" {
				t.Fatalf("DecodeClientMessage(%q) accepted agent.speak without text", data)
			}
		case TypeInterrupt, TypeKeepAlive:
			if msg.Text != "" {
				t.Fatalf("DecodeClientMessage(%q) = %+v, want no text", data, msg)
			}
		default:
			t.Fatalf("DecodeClientMessage(%q) accepted type %q", data, msg.Type)
		}
		again, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeClientMessage(again)
		if err != nil || back != msg {
			t.Fatalf("round trip of %+v = %+v, %v", msg, back, err)
		}
	})
}
