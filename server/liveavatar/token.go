package liveavatar

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strings"
	"time"

	"github.com/streamsession/streamsession/internal/seal"
)

// Session modes, as LiveAvatar names them.
const (
	ModeLite = "LITE"
	ModeFull = "FULL"
)

// maxTokenLen bounds what the token parsers look at.
const maxTokenLen = 4096

// keyring holds the sealing boxes and signing key derived from
// Config.Secret, one per use, so that no credential of one kind opens as
// another. It is immutable, safe for concurrent use by multiple goroutines.
type keyring struct {
	sign    []byte    // HMAC-SHA256 of session tokens
	account *seal.Box // seals the account inside a session token
	socket  *seal.Box // seals the account inside a ws_url credential
}

// Labels of the keys derived from Config.Secret.
const (
	labelSign    = "streamsession liveavatar session token signature v1"
	labelAccount = "streamsession liveavatar session token account v1"
	labelSocket  = "streamsession liveavatar socket credential v1"
)

// newKeyring derives the keyring of secret; it fails only for an empty
// secret.
func newKeyring(secret []byte) (keyring, error) {
	sign, err := seal.Key(secret, labelSign)
	if err != nil {
		return keyring{}, err
	}
	account, err := seal.New(secret, labelAccount)
	if err != nil {
		return keyring{}, err
	}
	socket, err := seal.New(secret, labelSocket)
	if err != nil {
		return keyring{}, err
	}
	return keyring{sign: sign, account: account, socket: socket}, nil
}

// padBlock is the block a sealed account is padded to, so that the
// credential's length says nothing of the account's name.
const padBlock = 32

// sealAccount encrypts account, authenticated with ad, as base64url.
func sealAccount(box *seal.Box, account string, ad []byte) string {
	n := 2 + len(account)
	plain := make([]byte, (n+padBlock-1)/padBlock*padBlock)
	binary.BigEndian.PutUint16(plain, uint16(len(account)))
	copy(plain[2:], account)
	return base64.RawURLEncoding.EncodeToString(box.Seal(nil, plain, ad))
}

// openAccount returns the account sealAccount sealed with ad, and false
// for anything else.
func openAccount(box *seal.Box, sealed string, ad []byte) (string, bool) {
	if len(sealed) > maxTokenLen {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return "", false
	}
	plain, err := box.Open(raw, ad)
	if err != nil || len(plain) < 2 {
		return "", false
	}
	n := int(binary.BigEndian.Uint16(plain))
	if n == 0 || 2+n > len(plain) {
		return "", false
	}
	return string(plain[2 : 2+n]), true
}

// claims is the payload of a session token. Only session_id and
// start_session_data are meant for clients (the web SDK reads the mode);
// acc is the sealed account.
type claims struct {
	SessionID string    `json:"session_id"`
	StartData startData `json:"start_session_data"`
	Account   string    `json:"acc"`
	IssuedAt  int64     `json:"iat"`
}

type startData struct {
	Mode string `json:"mode"`
	// IsSandbox is the token request's is_sandbox; absent from tokens of
	// earlier builds.
	IsSandbox *bool `json:"is_sandbox,omitempty"`
}

// tokenHeader is the JWT header of every session token, base64url.
var tokenHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func accountAD(sessionID string) []byte { return []byte("token\x00" + sessionID) }
func socketAD(sessionID string) []byte  { return []byte("socket\x00" + sessionID) }

// mintToken returns the session token of a session of account in mode
// (a sandbox session when sandbox).
func (k keyring) mintToken(account, sessionID, mode string, sandbox bool, now time.Time) string {
	payload, _ := json.Marshal(claims{ // strings, a bool and an int always marshal
		SessionID: sessionID,
		StartData: startData{Mode: mode, IsSandbox: &sandbox},
		Account:   sealAccount(k.account, account, accountAD(sessionID)),
		IssuedAt:  now.Unix(),
	})
	signing := tokenHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signing + "." + base64.RawURLEncoding.EncodeToString(k.mac(signing))
}

func (k keyring) mac(signing string) []byte {
	h := hmac.New(sha256.New, k.sign)
	h.Write([]byte(signing))
	return h.Sum(nil)
}

// tokenClaims is what a valid session token says. Sandbox is nil for a
// token that does not say (one minted by an earlier build).
type tokenClaims struct {
	Account, SessionID, Mode string
	Sandbox                  *bool
}

// verifyToken checks a session token's signature and returns its claims,
// and false for anything not minted under this secret.
func (k keyring) verifyToken(token string) (tokenClaims, bool) {
	if len(token) > maxTokenLen {
		return tokenClaims{}, false
	}
	head, rest, ok := strings.Cut(token, ".")
	if !ok || head != tokenHeader {
		return tokenClaims{}, false
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return tokenClaims{}, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, k.mac(head+"."+payload)) {
		return tokenClaims{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return tokenClaims{}, false
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil || c.SessionID == "" {
		return tokenClaims{}, false
	}
	account, ok := openAccount(k.account, c.Account, accountAD(c.SessionID))
	if !ok || (c.StartData.Mode != ModeLite && c.StartData.Mode != ModeFull) {
		return tokenClaims{}, false
	}
	return tokenClaims{Account: account, SessionID: c.SessionID, Mode: c.StartData.Mode, Sandbox: c.StartData.IsSandbox}, true
}

// socketCredential returns the credential of the session's ws_url.
func (k keyring) socketCredential(account, sessionID string) string {
	return sealAccount(k.socket, account, socketAD(sessionID))
}

// verifySocket returns the account a ws_url credential was minted for, and
// false when it was not minted for sessionID under this secret.
func (k keyring) verifySocket(credential, sessionID string) (string, bool) {
	if sessionID == "" {
		return "", false
	}
	return openAccount(k.socket, credential, socketAD(sessionID))
}
