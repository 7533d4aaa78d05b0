package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/fsm"
)

// DefaultCloseRetryAfter is how long a close begun through this node may
// stay unfinished before the node finishes it itself.
const DefaultCloseRetryAfter = time.Second

// finishTimeout bounds one look at the cut closes.
const finishTimeout = 5 * time.Second

// cutCloses are the closes begun through this node (a Transition with
// fsm.EventClose) whose closed it has not seen yet: a close cut by a
// Redis failure (the closing written, its reply lost, or the release or
// the closed that follow failing) leaves its session closing, and the
// closer that began it has given up. The loss checker finds those still
// closing after Config.CloseRetryAfter and moves their closing deadline to
// now, so that the next Due reports them orphaned (and any node's Manager
// finishes the close) as soon as Redis answers, not after ClosingGrace.
// It is safe for concurrent use by multiple goroutines.
type cutCloses struct {
	mu    sync.Mutex
	begun map[string]time.Time
}

// begin records that a close of id begins now.
func (c *cutCloses) begin(id string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.begun == nil {
		c.begun = make(map[string]time.Time)
	}
	if _, ok := c.begun[id]; !ok {
		c.begun[id] = now
	}
}

// done forgets id: its close finished, or never took place.
func (c *cutCloses) done(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.begun, id)
}

// older returns up to n ids whose close began before t.
func (c *cutCloses) older(t time.Time, n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for id, at := range c.begun {
		if len(ids) == n {
			break
		}
		if at.Before(t) {
			ids = append(ids, id)
		}
	}
	return ids
}

// finishCutCloses moves the closing deadline of every close this node
// began more than Config.CloseRetryAfter ago and that is still closing to
// now, and wakes the timer loop; it forgets those no longer closing. A
// Redis failure leaves them for the next look. It reports how many it
// moved.
func (s *Store) finishCutCloses(now time.Time) int {
	ids := s.cut.older(now.Add(-s.cfg.CloseRetryAfter), resyncBatch)
	if len(ids) == 0 {
		return 0
	}
	args := make([]any, 0, len(ids)+3)
	args = append(args, s.prefix, now.UnixMilli(), int64(fsm.Closing))
	for _, id := range ids {
		args = append(args, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	res, err := expediteScript.Run(ctx, s.client, []string{s.timers}, args...).Int64Slice()
	if err != nil || len(res) != len(ids) {
		return 0
	}
	moved := 0
	for i, id := range ids {
		if res[i] == 0 {
			s.cut.done(id)
			continue
		}
		moved++
	}
	if moved > 0 {
		s.signal()
	}
	return moved
}

// expediteScript moves the deadline of the sessions still closing to now
// (never later than it was). KEYS: 1 deadlines. ARGV: 1 key prefix, 2 now
// in ms, 3 the closing state's number, then ids. Returns 1 per id moved, 0
// per id not closing (or gone).
var expediteScript = redis.NewScript(`
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', ARGV[1] .. 'r:' .. id, 's') == ARGV[3] then
    redis.call('ZADD', KEYS[1], 'LT', ARGV[2], id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
`)
