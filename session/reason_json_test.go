package session

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReasonJSON: a Reason is written as its name in JSON, read back from
// it, and a name or value outside the enum is an error.
func TestReasonJSON(t *testing.T) {
	for r := ReasonNone; r <= ReasonNodeLost; r++ {
		b, err := json.Marshal(r)
		require.NoError(t, err)
		assert.Equal(t, `"`+r.String()+`"`, string(b))
		var back Reason
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, r, back)
	}
	b, err := json.Marshal(Info{Reason: ReasonIdle})
	require.NoError(t, err)
	assert.Contains(t, string(b), `"Reason":"idle"`)

	_, err = json.Marshal(Reason(42))
	assert.Error(t, err)
	back := ReasonStop
	assert.Error(t, json.Unmarshal([]byte(`"gone"`), &back))
	assert.Error(t, json.Unmarshal([]byte(`3`), &back), "a number is not a name")
	assert.Equal(t, ReasonStop, back, "a bad name changes nothing")
}
