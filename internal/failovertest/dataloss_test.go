package failovertest

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redistokens"
)

// TestDataLossClosesSockets: two nodes on one Redis, sockets open on both;
// Redis loses its data (FLUSHALL, then a restart without persistence).
// Within 10 s every socket gets closing and closed with reason store_lost
// and is closed, each node reports the loss once, the nodes' secret is
// back in Redis, and the account can open its whole concurrency again,
// exactly.
func TestDataLossClosesSockets(t *testing.T) {
	for _, how := range []string{"flushall", "restart"} {
		t.Run(how, func(t *testing.T) {
			srv := redistest.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			keeper, err := redistokens.KeepSecret(ctx, srv.Client(), "fo")
			require.NoError(t, err)
			var losses [2]atomic.Int32
			a := newNode(t, srv.Addr(), keeper.Secret(), nodeOptions{onDataLoss: func() { losses[0].Add(1) }})
			b := newNode(t, srv.Addr(), keeper.Secret(), nodeOptions{onDataLoss: func() { losses[1].Add(1) }})
			nodes := []*node{a, b}
			var socks []*socket
			for i := range acmeMax {
				c := nodes[i%2].newSession(t, "key-acme")
				require.Equal(t, http.StatusOK, nodes[(i+1)%2].call(server.PathStart, "key-acme", named(c.SessionID)).status)
				s := dial(t, nodes[(i+1)%2].on(t, c.RealtimeEndpoint))
				require.Equal(t, "connected", s.next(t)["state"])
				socks = append(socks, s)
			}
			// The plan is full.
			assert.Equal(t, 10007, a.call(server.PathNew, "key-acme", `{}`).code)

			start := time.Now()
			if how == "flushall" {
				require.NoError(t, srv.Client().FlushAll(ctx).Err())
			} else {
				srv.Restart()
			}
			for i, s := range socks {
				m := s.next(t)
				assert.Equal(t, "closing", m["state"], "socket %d: %v", i, m)
				assert.Equal(t, "store_lost", m["reason"], "socket %d: %v", i, m)
				m = s.next(t)
				assert.Equal(t, "closed", m["state"], "socket %d: %v", i, m)
				assert.Equal(t, "store_lost", m["reason"], "socket %d: %v", i, m)
				select {
				case _, open := <-s.msgs:
					assert.False(t, open, "socket %d: a message after closed", i)
				case <-time.After(10 * time.Second):
					t.Fatalf("socket %d not closed after closed", i)
				}
			}
			took := time.Since(start)
			assert.Less(t, took, 10*time.Second)
			eventually(t, "every node reporting the loss", 10*time.Second, func() bool {
				return losses[0].Load() == 1 && losses[1].Load() == 1
			})
			restored, err := keeper.Check(ctx)
			require.NoError(t, err)
			assert.True(t, restored, "the secret written back")
			t.Logf("%s: every socket closed with store_lost %v after the loss", how, took.Round(time.Millisecond))

			// A node started after the loss adopts the secret written back:
			// a session made on a opens its socket there.
			adopted, err := redistokens.KeepSecret(ctx, srv.Client(), "fo")
			require.NoError(t, err)
			require.Equal(t, keeper.Secret(), adopted.Secret())
			late := newNode(t, srv.Addr(), adopted.Secret(), nodeOptions{})
			c := a.newSession(t, "key-acme")
			require.Equal(t, http.StatusOK, a.call(server.PathStart, "key-acme", named(c.SessionID)).status)
			s := dial(t, late.on(t, c.RealtimeEndpoint))
			require.Equal(t, "connected", s.next(t)["state"])
			require.Equal(t, http.StatusOK, a.call(server.PathStop, "key-acme", named(c.SessionID)).status)
			assert.Equal(t, "closing", s.next(t)["state"])
			assert.Equal(t, "closed", s.next(t)["state"])

			// The account's whole concurrency, exactly.
			assertExact(t, nodes, "key-acme", acmeMax)
			for i := range losses {
				assert.Equal(t, int32(1), losses[i].Load(), "node %d reports the loss once", i)
			}
		})
	}
}
