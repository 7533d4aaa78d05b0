package redisstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/session"
)

// lossLog counts the DataLoss reports of one node.
type lossLog struct {
	mu     sync.Mutex
	losses []DataLoss
}

func (l *lossLog) add(d DataLoss) {
	l.mu.Lock()
	l.losses = append(l.losses, d)
	l.mu.Unlock()
}

func (l *lossLog) get() []DataLoss {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]DataLoss(nil), l.losses...)
}

// TestDataLoss: when Redis loses its data, by FLUSHALL or by a restart
// without persistence, every node closes the sessions it knew of
// (closing, then closed, with store_lost; a closing one closed with its own
// reason), forgets them and reports the loss once, well within 10 s.
func TestDataLoss(t *testing.T) {
	for _, how := range []string{"flushall", "restart"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			srv := redistest.Start(t)
			cfg := Config{LossCheckInterval: 50 * time.Millisecond}
			var losses [3]lossLog
			nodes := make([]*node, 2, 3)
			for i := range nodes {
				c := cfg
				c.OnDataLoss = losses[i].add
				nodes[i] = newNode(t, srv, c)
			}
			a := nodes[0]
			for _, id := range []string{"open", "connected", "closing", "closed"} {
				_, err := a.Insert(ctx, newRecord(id))
				require.NoError(t, err)
			}
			move := func(id string, evs ...fsm.Event) {
				for _, ev := range evs {
					_, _, err := a.Transition(ctx, "acme", id, session.Change{Event: ev, At: t0, Reason: session.ReasonStop})
					require.NoError(t, err)
				}
			}
			move("connected", fsm.EventStart, fsm.EventJoin)
			move("closing", fsm.EventClose)
			move("closed", fsm.EventClose, fsm.EventClosed)
			// A node started afterwards knows the sessions it read.
			c := cfg
			c.OnDataLoss = losses[2].add
			late := newNode(t, srv, c)
			_, err := late.Get(ctx, "acme", "connected")
			require.NoError(t, err)
			nodes = append(nodes, late)
			for _, n := range nodes[:2] {
				waitFor(t, "every event heard", 5*time.Second, func() bool { return len(n.log.of("closed")) == 3 })
			}

			start := time.Now()
			if how == "flushall" {
				require.NoError(t, srv.Client().FlushAll(ctx).Err())
			} else {
				srv.Restart()
			}
			for i, n := range nodes {
				waitFor(t, fmt.Sprintf("node %d: the loss reported", i), 10*time.Second, func() bool { return len(losses[i].get()) > 0 })
				waitFor(t, "the sessions forgotten", 10*time.Second, func() bool {
					evs := n.log.of("connected")
					return len(evs) > 0 && evs[len(evs)-1].To == fsm.Unknown
				})
				if i < 2 {
					assert.Equal(t, []DataLoss{{Sessions: 3}}, losses[i].get(), "node %d", i)
					assert.Equal(t, []fsm.State{fsm.New, fsm.Closing, fsm.Closed, fsm.Unknown}, states(n.log.of("open")))
					assert.Equal(t, []fsm.State{fsm.New, fsm.Connecting, fsm.Connected, fsm.Closing, fsm.Closed, fsm.Unknown}, states(n.log.of("connected")))
					assert.Equal(t, []fsm.State{fsm.New, fsm.Closing, fsm.Closed, fsm.Unknown}, states(n.log.of("closing")))
					assert.Equal(t, session.ReasonStop, last(n.log.of("closing")).Reason, "a closing session closes with its reason")
					assert.Equal(t, []fsm.State{fsm.New, fsm.Closing, fsm.Closed, fsm.Unknown}, states(n.log.of("closed")))
				} else {
					assert.Equal(t, []DataLoss{{Sessions: 1}}, losses[i].get(), "the late node knew one session")
					assert.Equal(t, []fsm.State{fsm.Closing, fsm.Closed, fsm.Unknown}, states(n.log.of("connected")))
				}
				lostIDs := []string{"open", "connected"}
				if i == 2 {
					lostIDs = lostIDs[1:]
				}
				for _, id := range lostIDs {
					evs := n.log.of(id)
					require.GreaterOrEqual(t, len(evs), 3)
					closing, closed := evs[len(evs)-3], evs[len(evs)-2]
					assert.Equal(t, session.ReasonStoreLost, closing.Reason, "node %d %s closing", i, id)
					assert.Equal(t, session.ReasonStoreLost, closed.Reason, "node %d %s closed", i, id)
					assert.Equal(t, closing.Epoch+1, closed.Epoch)
				}
			}
			t.Logf("%s noticed and handled by 3 nodes in %v", how, time.Since(start).Round(time.Millisecond))

			// Life goes on: a new session is heard by the other nodes (after
			// a restart, once their subscriptions are back: what is
			// published before reaches nobody), and no second loss is
			// reported.
			tries := 0
			waitFor(t, "a new session heard", 15*time.Second, func() bool {
				id := fmt.Sprintf("after-%d", tries)
				tries++
				_, err := a.Insert(ctx, newRecord(id))
				require.NoError(t, err)
				time.Sleep(20 * time.Millisecond)
				return len(nodes[1].log.of(id)) == 1
			})
			time.Sleep(3 * cfg.LossCheckInterval) // the checks that would report a second loss
			for i := range nodes {
				assert.Len(t, losses[i].get(), 1, "node %d reports the loss once", i)
			}
		})
	}
}

func last(evs []session.Event) session.Event {
	if len(evs) == 0 {
		return session.Event{}
	}
	return evs[len(evs)-1]
}
