// Package seal is the one way the project seals data under its secret: a
// 256-bit key derived from the secret by HKDF-SHA-256 under a label of its
// use, and AES-256-GCM with a random nonce. The access tokens of sessions,
// the bearer tokens in Redis and the idempotent answers kept in Redis all
// seal through it, each under a label of its own, so that no two uses share
// a key.
//
// Build a [Box] once, when the secret is known, and keep it: deriving the
// key and building the cipher cost more than sealing a token.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// KeySize is the size of every derived key, in bytes.
const KeySize = 32

// ErrOpen is returned by [Box.Open] for sealed bytes that were not sealed
// by a Box of the same secret and label with the same additional data, or
// that were altered.
var ErrOpen = errors.New("seal: message does not open")

// Key derives a KeySize-byte key from secret for the use named by label
// (HKDF-SHA-256, no salt). It fails only for an empty secret.
func Key(secret []byte, label string) ([]byte, error) {
	if len(secret) == 0 {
		return nil, errors.New("seal: empty secret")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, label, KeySize)
	if err != nil {
		return nil, fmt.Errorf("seal: derive key: %w", err)
	}
	return key, nil
}

// Box seals and opens messages under one key. It keeps no state between
// calls and is safe for concurrent use by multiple goroutines.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box whose key is derived from secret under label (see
// [Key]). It fails only for an empty secret.
func New(secret []byte, label string) (*Box, error) {
	key, err := Key(secret, label)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: aes: %w", err) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("seal: gcm: %w", err) // AES has a 16-byte block
	}
	return &Box{aead: aead}, nil
}

// Overhead is how many bytes Seal adds to a message: the random nonce and
// the authentication tag.
func (b *Box) Overhead() int { return b.aead.Overhead() }

// Seal appends to dst the sealed form of plain, bound to the additional
// data ad (authenticated, not stored), and returns the result.
func (b *Box) Seal(dst, plain, ad []byte) []byte { return b.aead.Seal(dst, nil, plain, ad) }

// Open returns the message sealed in sealed with the additional data ad, or
// ErrOpen.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	plain, err := b.aead.Open(nil, nil, sealed, ad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
