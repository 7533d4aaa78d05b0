// Package jsgen writes js/guard/index.js, the browser guard, from the Go
// command policy: the states and their order (fsm.States), which states accept
// each command (fsm.Allow), and the error each state answers
// (fsm.StateError). The JavaScript around those tables is index.js.tmpl.
package jsgen

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

//go:embed index.js.tmpl
var source string

var tmpl = template.Must(template.New("index.js").Parse(source))

// SocketCommand is the guard's name for opening the realtime socket
// (GET /v1/ws/streaming.chat). It is not an fsm.Command: the server accepts
// the socket where the lifecycle's join event is allowed (connecting) and,
// to reconnect, in connected (session.Manager.Join).
const SocketCommand = "ws/streaming.chat"

// Refusal is what the server answers to a command a state does not accept.
type Refusal struct {
	Status  int    `json:"status"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Name returns the guard's name of cmd: its endpoint, "streaming.<name>".
func Name(cmd fsm.Command) string { return "streaming." + cmd.String() }

// Commands returns the guard's command names: every fsm.Command in
// declaration order, then SocketCommand.
func Commands() []string {
	var names []string
	for _, c := range fsm.Commands() {
		names = append(names, Name(c))
	}
	return append(names, SocketCommand)
}

// Decide returns nil when the server accepts command (a name from Commands)
// in state s, and otherwise the refusal it answers. It panics on a name not
// from Commands: the generator only asks about those.
func Decide(s fsm.State, command string) *Refusal {
	var err *sserrors.Error
	if command == SocketCommand {
		if _, jerr := fsm.Next(s, fsm.EventJoin); jerr != nil && s != fsm.Connected {
			err = fsm.StateError(s)
		}
	} else {
		cmd, ok := fsm.ParseCommand(strings.TrimPrefix(command, "streaming."))
		if !ok || Name(cmd) != command {
			panic("jsgen: unknown command " + command)
		}
		if e := fsm.Allow(s, cmd); e != nil {
			err, _ = sserrors.As(e)
		}
	}
	if err == nil {
		return nil
	}
	return &Refusal{Status: err.Status, Code: int(err.Code), Message: err.Message}
}

// Render returns the content of index.js.
func Render() ([]byte, error) {
	var states []string
	refusals := make(map[string]Refusal)
	for _, s := range fsm.States() {
		states = append(states, s.String())
		e := fsm.StateError(s)
		refusals[s.String()] = Refusal{Status: e.Status, Code: int(e.Code), Message: e.Message}
	}
	accepts := make(map[string][]string)
	commands := Commands()
	for _, c := range commands {
		accepts[c] = []string{}
		for _, s := range fsm.States() {
			if Decide(s, c) == nil {
				accepts[c] = append(accepts[c], s.String())
			}
		}
	}
	nf := sserrors.ErrSessionNotFound
	data := map[string]string{
		"States":   mustJSON(states),
		"Commands": mustJSON(commands),
		"Refusals": indentedMap(states, func(k string) any { return refusals[k] }),
		"Accepts":  indentedMap(commands, func(k string) any { return accepts[k] }),
		"NotFound": mustJSON(Refusal{Status: nf.Status, Code: int(nf.Code), Message: nf.Message}),
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("jsgen: %w", err)
	}
	return buf.Bytes(), nil
}

// indentedMap writes an object literal, one key a line, in the order of keys.
func indentedMap(keys []string, value func(string) any) string {
	var b bytes.Buffer
	b.WriteString("{\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %s,\n", mustJSON(k), mustJSON(value(k)))
	}
	b.WriteString("}")
	return b.String()
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain strings and structs
	}
	return string(b)
}
