package liveavatar

import "strings"

// MaxHistoric bounds the closed sessions one historic listing reads (its
// count): the session stores keep at most their per-account bound (1,000
// by default) anyway; this caps a store configured without one.
const MaxHistoric = 10_000

// labelPrefix marks a session label written by this surface.
const labelPrefix = "liveavatar:"

// sessionLabel is the session.CreateOptions.Label of a session created
// through POST /v1/sessions/token: the facts of the token request that the
// listings serve for every caller.
func sessionLabel(mode string, sandbox bool) string {
	s := labelPrefix + "mode=" + mode
	if sandbox {
		s += ";sandbox"
	}
	return s
}

// parseSessionLabel reads a label sessionLabel wrote; ok is false for any
// other label (a session created through the Streaming API has none).
func parseSessionLabel(label string) (mode string, sandbox bool, ok bool) {
	rest, found := strings.CutPrefix(label, labelPrefix+"mode=")
	if !found {
		return "", false, false
	}
	mode, flags, _ := strings.Cut(rest, ";")
	if mode != ModeLite && mode != ModeFull {
		return "", false, false
	}
	return mode, flags == "sandbox", true
}
