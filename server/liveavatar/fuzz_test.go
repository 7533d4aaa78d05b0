package liveavatar

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzVerifyToken checks that no input panics the token parser and that
// only a token minted under the key opens, with the claims it was minted
// with.
func FuzzVerifyToken(f *testing.F) {
	k := mustKeyring(f, []byte("0123456789abcdef0123456789abcdef"))
	good := k.mintToken("acme", "s1", ModeLite, false, time.Unix(0, 0))
	f.Add(good)
	f.Add(good + "x")
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, ok := k.verifyToken(tok)
		if ok && tok != good && (c.Account != "acme" || c.SessionID != "s1") {
			t.Fatalf("verifyToken(%q) = %+v, true: a token not minted here", tok, c)
		}
		if _, ok := k.verifySocket(tok, "s1"); ok && tok == good {
			t.Fatal("a session token opened as a socket credential")
		}
	})
}

// FuzzParseTokenRequest checks that no body panics the validation and that
// a body it accepts names a mode and an avatar.
func FuzzParseTokenRequest(f *testing.F) {
	for _, s := range []string{
		`{"mode":"LITE","avatar_id":"a"}`,
		`{"mode":"FULL","avatar_id":"a","avatar_persona":{"voice_id":1}}`,
		`{"mode":"LITE","avatar_id":"a","livekit_config":{"livekit_url":"u"},"video_settings":[]}`,
		`{"mode":"LITE","avatar_id":"a","max_session_duration":1e99}`,
		`{}`, `[]`, `null`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		fields := map[string]json.RawMessage{}
		if json.Unmarshal([]byte(body), &fields) != nil {
			return
		}
		req, err := parseTokenRequest(fields)
		if err == nil && (req.avatarID == "" || (req.mode != ModeLite && req.mode != ModeFull) || req.maxDuration < 0) {
			t.Fatalf("parseTokenRequest(%s) = %+v, nil", body, req)
		}
	})
}
