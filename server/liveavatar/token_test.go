package liveavatar

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSessionToken(t *testing.T) {
	k := mustKeyring(t, []byte("0123456789abcdef0123456789abcdef"))
	now := time.Unix(1_700_000_000, 0)
	tok := k.mintToken("acme", "s1", ModeLite, false, now)

	got, ok := k.verifyToken(tok)
	assert.True(t, ok)
	no := false
	assert.Equal(t, tokenClaims{Account: "acme", SessionID: "s1", Mode: ModeLite, Sandbox: &no}, got)
	yes := true
	got, _ = k.verifyToken(k.mintToken("acme", "s1", ModeLite, true, now))
	assert.Equal(t, &yes, got.Sandbox)

	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	assert.NotContains(t, string(payload), "acme", "the payload names no account")
	assert.Contains(t, string(payload), `"start_session_data":{"mode":"LITE","is_sandbox":false}`)
	assert.Equal(t, len(k.mintToken("a", "s1", ModeLite, false, now)), len(k.mintToken("abcdefghijklmnopqrstuvwxyz", "s1", ModeLite, false, now)),
		"the account's length does not show")

	swap := func(i int, s string) string {
		p := append([]string(nil), parts...)
		p[i] = s
		return strings.Join(p, ".")
	}
	other := strings.Split(k.mintToken("acme", "s2", ModeFull, false, now), ".")
	for name, bad := range map[string]string{
		"empty":                "",
		"two parts":            parts[0] + "." + parts[1],
		"another payload":      swap(1, other[1]),
		"another signature":    swap(2, other[2]),
		"alg none":             swap(0, base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))),
		"signature not base64": swap(2, "!!"),
		"another secret":       mustKeyring(t, []byte("another secret, 32 bytes long!!!")).mintToken("acme", "s1", ModeLite, false, now),
		"socket credential":    k.socketCredential("acme", "s1"),
		"oversized":            strings.Repeat("a", maxTokenLen+1),
		"trailing part":        tok + ".x",
		"payload not JSON":     swap(1, base64.RawURLEncoding.EncodeToString([]byte("x"))),
	} {
		_, ok := k.verifyToken(bad)
		assert.False(t, ok, name)
	}
}

func TestSocketCredential(t *testing.T) {
	k := mustKeyring(t, []byte("0123456789abcdef0123456789abcdef"))
	cred := k.socketCredential("acme", "s1")
	acct, ok := k.verifySocket(cred, "s1")
	assert.True(t, ok)
	assert.Equal(t, "acme", acct)
	for name, c := range map[string]struct{ cred, id string }{
		"another session": {cred, "s2"},
		"no session":      {cred, ""},
		"session token":   {k.mintToken("acme", "s1", ModeLite, false, time.Now()), "s1"},
		"truncated":       {cred[:len(cred)-1], "s1"},
		"another secret":  {mustKeyring(t, []byte("another secret, 32 bytes long!!!")).socketCredential("acme", "s1"), "s1"},
	} {
		_, ok := k.verifySocket(c.cred, c.id)
		assert.False(t, ok, name)
	}
}

// mustKeyring derives the keyring of secret or fails the test.
func mustKeyring(t testing.TB, secret []byte) keyring {
	t.Helper()
	k, err := newKeyring(secret)
	if err != nil {
		t.Fatalf("newKeyring: %v", err)
	}
	return k
}

// TestKeyringFormat pins the token and credential format: a session token
// and a ws_url credential minted by an earlier build under the same secret
// still open, so that nodes of two builds accept each other's during a
// rolling upgrade.
func TestKeyringFormat(t *testing.T) {
	k := mustKeyring(t, []byte("0123456789abcdef0123456789abcdef"))
	const (
		token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
			"eyJzZXNzaW9uX2lkIjoiczEiLCJzdGFydF9zZXNzaW9uX2RhdGEiOnsibW9kZSI6IkxJVEUifSwiYWNjIjoiRkJGQmVWeDJIUmFySFNEemNnVnRiNUQzU0thUGdYZERDTUJlNGV3MnctUmZTZzFZY2oxZS0xZWR6NzR2RFJyRlRCN3VOWllqU1M2UVhQMDUiLCJpYXQiOjE3MDAwMDAwMDB9." +
			"jMW9JKM4u40jIxzq9Rkxl76K103bag0Ayr_GzHU8nAk"
		credential = "sIURkNvgdldsoU7RE1aXIJkTdPAtobCCBrLUzy55ADvRlFuAvAsgBF0k87arVwO9HF1czQmFzFrVlImj"
	)
	got, ok := k.verifyToken(token)
	assert.True(t, ok)
	assert.Equal(t, tokenClaims{Account: "acme", SessionID: "s1", Mode: ModeLite}, got)
	acct, ok := k.verifySocket(credential, "s1")
	assert.True(t, ok)
	assert.Equal(t, "acme", acct)

	_, err := newKeyring(nil)
	assert.Error(t, err, "an empty secret derives no keys")
}
