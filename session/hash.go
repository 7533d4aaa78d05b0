package session

import (
	"crypto/sha256"
	"encoding/hex"
)

// ShortHash returns a short, stable, non-reversible label for a session id
// (the first 12 hex digits of its SHA-256), for logs, metrics and hooks
// where the raw id must not appear. It returns "" for "".
func ShortHash(id string) string {
	if id == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}
