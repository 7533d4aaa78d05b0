package seal

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestRoundTrip(t *testing.T) {
	b, err := New(secret, "test v1")
	require.NoError(t, err)
	sealed := b.Seal(nil, []byte("hello"), []byte("ad"))
	assert.Equal(t, 5+b.Overhead(), len(sealed))
	assert.NotContains(t, string(sealed), "hello")
	plain, err := b.Open(sealed, []byte("ad"))
	require.NoError(t, err)
	assert.Equal(t, []byte("hello"), plain)
	again := b.Seal(nil, []byte("hello"), []byte("ad"))
	assert.NotEqual(t, sealed, again, "a random nonce: two seals differ")
}

func TestOpenRefuses(t *testing.T) {
	b, err := New(secret, "test v1")
	require.NoError(t, err)
	otherLabel, err := New(secret, "test v2")
	require.NoError(t, err)
	otherSecret, err := New([]byte("another secret, sixteen+"), "test v1")
	require.NoError(t, err)
	sealed := b.Seal(nil, []byte("hello"), []byte("ad"))
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 1
	cases := map[string]struct {
		box    *Box
		sealed []byte
		ad     string
	}{
		"other ad":     {b, sealed, "da"},
		"other label":  {otherLabel, sealed, "ad"},
		"other secret": {otherSecret, sealed, "ad"},
		"altered":      {b, flipped, "ad"},
		"short":        {b, sealed[:10], "ad"},
		"empty":        {b, nil, "ad"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := c.box.Open(c.sealed, []byte(c.ad))
			assert.ErrorIs(t, err, ErrOpen)
		})
	}
}

func TestKey(t *testing.T) {
	a, err := Key(secret, "one")
	require.NoError(t, err)
	b, err := Key(secret, "two")
	require.NoError(t, err)
	assert.Len(t, a, KeySize)
	assert.NotEqual(t, a, b, "labels separate the keys")
	again, err := Key(secret, "one")
	require.NoError(t, err)
	assert.Equal(t, a, again, "derivation is deterministic")
	_, err = Key(nil, "one")
	assert.Error(t, err)
	_, err = New(nil, "one")
	assert.Error(t, err)
}

// TestKeyKnownAnswer pins the derivation to RFC 5869 HKDF-SHA-256 with no
// salt, computed apart from this package: tokens and answers sealed by one
// build are opened by the next (a rolling upgrade, Redis-kept state), so
// the derivation may never change silently.
func TestKeyKnownAnswer(t *testing.T) {
	key, err := Key(secret, "one")
	require.NoError(t, err)
	assert.Equal(t, "1dd4586f264aca27ba1309662cc812c3b1734f236357bd49463fa7ee14afd110", hex.EncodeToString(key))
}
