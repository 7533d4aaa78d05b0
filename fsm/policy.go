package fsm

import (
	"strconv"
	"strings"
)

// Command is an API command subject to the command policy. A Command is a
// plain value, safe to copy and to share between goroutines.
type Command int

// The API commands, named after their streaming.* endpoints.
const (
	CmdStart          Command = iota + 1 // streaming.start
	CmdICE                               // streaming.ice
	CmdTask                              // streaming.task
	CmdInterrupt                         // streaming.interrupt
	CmdKeepAlive                         // streaming.keep_alive
	CmdStartListening                    // streaming.start_listening
	CmdStopListening                     // streaming.stop_listening
	CmdStop                              // streaming.stop
)

const numCommands = int(CmdStop) + 1

// stateSet is a set of States, one bit per State.
type stateSet uint8

func setOf(states ...State) stateSet {
	var set stateSet
	for _, s := range states {
		set |= 1 << s
	}
	return set
}

func (set stateSet) has(s State) bool { return s.valid() && set&(1<<s) != 0 }

// policy is the command policy: the one place that says which states accept
// which command. Indexed by Command.
var policy = [numCommands]struct {
	name   string   // the API name, as in the endpoint streaming.<name>
	accept stateSet // the states in which the command is allowed
}{
	CmdStart:          {"start", setOf(New)},
	CmdICE:            {"ice", setOf(New, Connecting)},
	CmdTask:           {"task", setOf(Connected)},
	CmdInterrupt:      {"interrupt", setOf(Connected)},
	CmdKeepAlive:      {"keep_alive", setOf(Connected)},
	CmdStartListening: {"start_listening", setOf(Connected)},
	CmdStopListening:  {"stop_listening", setOf(Connected)},
	CmdStop:           {"stop", setOf(New, Connecting, Connected)},
}

func (c Command) valid() bool { return c >= CmdStart && c <= CmdStop }

// String returns the API name of c ("start", "ice", "task", "interrupt",
// "keep_alive", "start_listening", "stop_listening", "stop"), or "Command(n)"
// for a value outside the enum.
func (c Command) String() string {
	if c.valid() {
		return policy[c].name
	}
	return "Command(" + strconv.Itoa(int(c)) + ")"
}

// Commands returns every Command in declaration order. The slice is new on
// every call; callers may modify it.
func Commands() []Command {
	return []Command{CmdStart, CmdICE, CmdTask, CmdInterrupt, CmdKeepAlive, CmdStartListening, CmdStopListening, CmdStop}
}

// ParseCommand returns the Command whose API name is name, compared
// case-insensitively, and false when there is none.
func ParseCommand(name string) (Command, bool) {
	for c := CmdStart; c <= CmdStop; c++ {
		if strings.EqualFold(name, policy[c].name) {
			return c, true
		}
	}
	return 0, false
}

// Allow returns nil when a session in state s accepts cmd, and otherwise
// StateError(s): the shared 10001–10005 error naming s (500000 when s is
// Unknown). A Command outside the enum is accepted in no state. Allow is safe
// for concurrent use and never allocates.
func Allow(s State, cmd Command) error {
	if uint32(s) < uint32(numStates) && uint(cmd) < uint(numCommands) {
		return decisions[s][cmd]
	}
	return StateError(s)
}

// decisions is the policy compiled into answers: nil where the state
// accepts the command, the state's shared error elsewhere. Allow is then one
// bounds check and an index, small enough to inline into a client's guard.
var decisions = func() (d [numStates][numCommands]error) {
	for s := range State(numStates) {
		for c := range Command(numCommands) {
			if !c.valid() || !policy[c].accept.has(s) {
				d[s][c] = StateError(s)
			}
		}
	}
	return d
}()
