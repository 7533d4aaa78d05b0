package redisdir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/media/mediatest"
	"github.com/streamsession/streamsession/media/redisdir"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/redisrelay"
	"github.com/streamsession/streamsession/session"
	"github.com/streamsession/streamsession/session/redisstore"
)

type node struct {
	url    string
	mgr    *session.Manager
	eng    *media.Engine
	dir    *mediatest.Mortal
	events chan session.Event
}

func (n *node) post(t *testing.T, path string, body any) (int, json.RawMessage, string) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, n.url+path, bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", "key-acme")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(raw, &env), "%s", raw)
	return resp.StatusCode, env.Data, string(raw)
}

func (n *node) wait(t *testing.T, id string, to fsm.State) session.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-n.events:
			if e.SessionID == id && e.To == to {
				return e
			}
		case <-deadline:
			t.Fatalf("session never reached %s on this node", to)
		}
	}
}

// The whole multi-node path on one Redis: sessions in redisstore, speech
// through redisrelay, peers in redisdir. The peer lives on a; the client's
// candidate, start and task go through b; a is killed and b closes the
// session media_lost.
func TestNodesOnRedis(t *testing.T) {
	rds := redistest.Start(t)
	lim := limits.NewMemory(limits.MemoryConfig{SweepInterval: -1})
	t.Cleanup(func() { lim.Close() })
	accounts := server.AccountsByKey{"key-acme": {Name: "acme", Plan: limits.PaidPlan}}
	avatars := session.Avatars{{ID: "Wayne_20240711", Public: true, Active: true, Default: true}}
	var nodes []*node
	for range 2 {
		store, err := redisstore.New(rds.Client(), redisstore.Config{Prefix: "m"})
		require.NoError(t, err)
		mgr, err := session.NewManager(session.Config{Limiter: lim, Avatars: avatars, Store: store})
		require.NoError(t, err)
		relay, err := redisrelay.New(rds.Client(), redisrelay.Config{Prefix: "m"})
		require.NoError(t, err)
		var handler http.Handler
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
		dir := &mediatest.Mortal{Directory: redisdir.New(rds.Client(), redisdir.Config{Prefix: "m:"})}
		eng, err := media.New(mgr, media.Config{Directory: dir, NodeURL: hs.URL, BeatEvery: 100 * time.Millisecond})
		require.NoError(t, err)
		srv, err := server.New(server.Config{Manager: mgr, Accounts: accounts, Avatars: avatars, Secret: []byte("0123456789abcdef0123456789abcdef"),
			Relay: relay, Media: eng, TaskDuration: func(string) time.Duration { return 300 * time.Millisecond }})
		require.NoError(t, err)
		handler = srv
		n := &node{url: hs.URL, mgr: mgr, eng: eng, dir: dir, events: make(chan session.Event, 256)}
		cancel := mgr.Subscribe(func(e session.Event) { n.events <- e })
		t.Cleanup(func() {
			hs.Close()
			require.NoError(t, mgr.Close(context.Background()))
			cancel()
			require.NoError(t, srv.Shutdown(context.Background()))
			require.NoError(t, eng.Close())
			require.NoError(t, relay.Close())
			require.NoError(t, store.Close())
		})
		nodes = append(nodes, n)
	}
	a, b := nodes[0], nodes[1]

	status, data, body := a.post(t, server.PathNew, map[string]any{})
	require.Equal(t, http.StatusOK, status, body)
	var created struct {
		SessionID string                    `json:"session_id"`
		SDP       webrtc.SessionDescription `json:"sdp"`
	}
	require.NoError(t, json.Unmarshal(data, &created))
	id := created.SessionID

	api, err := mediatest.LoopbackAPI()
	require.NoError(t, err)
	c, ans, err := mediatest.Answer(api, created.SDP)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.PC.Close() })
	cand, err := c.Candidate(5 * time.Second)
	require.NoError(t, err)
	status, _, body = b.post(t, server.PathICE, map[string]any{"session_id": id, "candidate": cand})
	require.Equal(t, http.StatusOK, status, body)
	status, _, body = b.post(t, server.PathStart, map[string]any{"session_id": id, "sdp": ans})
	require.Equal(t, http.StatusOK, status, body)
	b.wait(t, id, fsm.Connected)
	assert.True(t, a.eng.Has(id))
	assert.False(t, b.eng.Has(id))
	<-c.Opened

	status, data, body = b.post(t, server.PathTask, map[string]any{"session_id": id, "text": "hello"})
	require.Equal(t, http.StatusOK, status, body)
	var task struct {
		TaskID string `json:"task_id"`
	}
	require.NoError(t, json.Unmarshal(data, &task))
	for _, want := range []string{"avatar_start_talking", "avatar_stop_talking"} {
		m, err := c.Message(5 * time.Second)
		require.NoError(t, err)
		assert.Equal(t, want, m["type"])
		assert.Equal(t, task.TaskID, m["task_id"])
	}

	a.dir.Kill() // a is killed
	t0 := time.Now()
	ev := b.wait(t, id, fsm.Closed)
	assert.Equal(t, session.ReasonMediaLost, ev.Reason)
	t.Logf("the survivor closed the dead node's session %v after its last beat", time.Since(t0).Round(time.Millisecond))
}
