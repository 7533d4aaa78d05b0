package liveavatar

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server/realtime"
)

// TestSpeechQueueBounded checks that a client cannot queue utterances
// without bound (each waits for the one before to play, so a client
// sending long audio faster than it plays grew the queue for as long as
// the session lived): past MaxQueuedUtterances a new utterance is refused,
// and once one has played there is room again.
func TestSpeechQueueBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{t0: time.Now()}
		s := newSpeech(realtime.RealClock{}, rec.emit)
		defer s.close()
		for i := range MaxQueuedUtterances {
			require.True(t, s.speak("e", time.Second), "utterance %d", i)
			require.True(t, s.end())
		}
		assert.False(t, s.speak("over", time.Second), "a new utterance past the bound")
		assert.False(t, s.end(), "the refused chunk opened nothing")
		time.Sleep(time.Second)
		synctest.Wait()
		assert.True(t, s.speak("next", time.Second), "room once one has played")
		assert.True(t, s.speak("next", time.Second), "a chunk joins the open utterance")
	})
}
