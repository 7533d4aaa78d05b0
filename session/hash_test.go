package session

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShortHash(t *testing.T) {
	h := ShortHash("0123456789abcdef0123456789abcdef")
	assert.Len(t, h, 12)
	assert.Equal(t, h, ShortHash("0123456789abcdef0123456789abcdef"), "stable")
	assert.NotEqual(t, h, ShortHash("0123456789abcdef0123456789abcdee"))
	assert.NotContains(t, h, "0123456789ab", "the id does not show through")
	assert.Equal(t, "", ShortHash(""))
}
