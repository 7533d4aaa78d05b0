package service

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/internal/redistest"
	"github.com/streamsession/streamsession/internal/wstest"
	"github.com/streamsession/streamsession/media/mediatest"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// newWithOffer creates a session on s with streaming.new and body, and
// returns its id and the answer's data.
func newWithOffer(t *testing.T, s *served, body string) (string, map[string]any) {
	t.Helper()
	status, created := s.post(t, server.PathNew, "demo-pro-key", body)
	require.Equal(t, http.StatusOK, status, created)
	data := created["data"].(map[string]any)
	return data["session_id"].(string), data
}

// connectMedia answers the session's offer (data, from streaming.new) with
// a pion client peer restricted to loopback, as SDK 1.x does: start with
// the answer, then its candidates with streaming.ice. It returns when the
// start was answered; the client's PC is closed at the test's end.
func connectMedia(t *testing.T, s *served, id string, data map[string]any) *mediatest.Client {
	t.Helper()
	raw, err := json.Marshal(data["sdp"])
	require.NoError(t, err)
	var offer webrtc.SessionDescription
	require.NoError(t, json.Unmarshal(raw, &offer))
	require.Equal(t, webrtc.SDPTypeOffer, offer.Type)
	api, err := mediatest.LoopbackAPI()
	require.NoError(t, err)
	client, answer, err := mediatest.Answer(api, offer)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.PC.Close() })
	sdp, err := json.Marshal(answer)
	require.NoError(t, err)
	_, started := s.post(t, server.PathStart, "demo-pro-key", `{"session_id":"`+id+`","sdp":`+string(sdp)+`}`)
	require.EqualValues(t, 100, started["code"], "start with the answer: %v", started)
	cand, err := client.Candidate(5 * time.Second)
	require.NoError(t, err)
	c, err := json.Marshal(cand)
	require.NoError(t, err)
	_, iced := s.post(t, server.PathICE, "demo-pro-key", `{"session_id":"`+id+`","candidate":`+string(c)+`}`)
	// The peer may connect on the server's candidates alone before this
	// one arrives: then ice answers 10003, as it does once connected.
	assert.Contains(t, []any{float64(100), float64(10003)}, iced["code"], "ice: %v", iced)
	return client
}

func state(t *testing.T, n *Node, id string) session.Info {
	t.Helper()
	info, err := n.Manager.Get(context.Background(), "demo-pro", id)
	require.NoError(t, err)
	return info
}

// TestMediaDemo drives the demo node from outside as SDK 1.x does: the
// offer in streaming.new, the answer in start (connecting at once), the
// session connected by media, not by a socket.
func TestMediaDemo(t *testing.T) {
	s := serveNode(t, Demo(), Options{})
	require.NotNil(t, s.node.Media, "the demo serves media")

	id, data := newWithOffer(t, s, `{}`)
	sdp, ok := data["sdp"].(map[string]any)
	require.True(t, ok, "streaming.new answers an offer: %v", data)
	assert.Equal(t, "offer", sdp["type"])
	assert.Contains(t, sdp["sdp"], "v=0")
	assert.Equal(t, []any{}, data["ice_servers2"], "the demo hands out no ICE server")
	assert.Equal(t, []any{}, data["ice_servers"])
	assert.Equal(t, "new", state(t, s.node, id).State.String())

	client := connectMedia(t, s, id, data)
	eventually(t, 10*time.Second, "the session is connected by its peer", func() bool {
		return state(t, s.node, id).State.String() == "connected"
	})
	assert.Equal(t, webrtc.PeerConnectionStateConnected, client.PC.ConnectionState())
	peer, ok := s.node.Media.PeerState(id)
	require.True(t, ok)
	assert.Equal(t, webrtc.PeerConnectionStateConnected, peer)

	_, stopped := s.post(t, server.PathStop, "demo-pro-key", `{"session_id":"`+id+`"}`)
	require.EqualValues(t, 100, stopped["code"], stopped)
	eventually(t, 5*time.Second, "the session's peer is closed", func() bool { return !s.node.Media.Has(id) })
	require.NoError(t, s.end(t))
}

// TestMediaConnectingUntilMedia checks that start with an answer moves the
// session to connecting at once, and that the realtime socket does not
// connect it: only media does. The client's peer is closed before its
// answer is sent, so no media ever comes.
func TestMediaConnectingUntilMedia(t *testing.T) {
	s := serveNode(t, Demo(), Options{})
	id, data := newWithOffer(t, s, `{}`)
	raw, err := json.Marshal(data["sdp"])
	require.NoError(t, err)
	var offer webrtc.SessionDescription
	require.NoError(t, json.Unmarshal(raw, &offer))
	api, err := mediatest.LoopbackAPI()
	require.NoError(t, err)
	client, answer, err := mediatest.Answer(api, offer)
	require.NoError(t, err)
	require.NoError(t, client.PC.Close())
	body, err := json.Marshal(answer)
	require.NoError(t, err)
	_, started := s.post(t, server.PathStart, "demo-pro-key", `{"session_id":"`+id+`","sdp":`+string(body)+`}`)
	require.EqualValues(t, 100, started["code"], started)
	assert.Equal(t, "connecting", state(t, s.node, id).State.String(), "start with sdp: connecting at once")

	ws := wstest.Dial(t, data["realtime_endpoint"].(string))
	assert.Equal(t, "connecting", ws.State(), "the socket opened: still connecting")
	_, task := s.post(t, server.PathTask, "demo-pro-key", `{"session_id":"`+id+`","text":"hi"}`)
	assert.EqualValues(t, 10002, task["code"], "the socket alone does not connect a media session: %v", task)
	assert.Equal(t, "connecting", state(t, s.node, id).State.String())
	_, stopped := s.post(t, server.PathStop, "demo-pro-key", `{"session_id":"`+id+`"}`)
	require.EqualValues(t, 100, stopped["code"], stopped)
	assert.Equal(t, "closing", ws.State())
	assert.Equal(t, "closed", ws.State())
}

// TestMediaV2AndOff checks the answers without media: "version":"v2"
// allocates no peer, and a file without media serves none.
func TestMediaV2AndOff(t *testing.T) {
	s := serveNode(t, Demo(), Options{})
	id, data := newWithOffer(t, s, `{"version":"v2"}`)
	assert.NotContains(t, data, "sdp")
	assert.NotContains(t, data, "ice_servers2")
	assert.False(t, s.node.Media.Has(id), "v2: no peer")

	cfg, err := Parse([]byte(`{}`))
	require.NoError(t, err)
	off := serveNode(t, cfg, Options{})
	assert.Nil(t, off.node.Media, "a file without media serves none")
	_, data = newWithOffer(t, off, `{}`)
	assert.NotContains(t, data, "sdp")
	assert.NotContains(t, data, "ice_servers2")
}

// TestMediaConfigKeys checks the media object's keys reach the engine.
func TestMediaConfigKeys(t *testing.T) {
	cfg, err := Parse([]byte(`{"media": {"enabled": true, "udp": "127.0.0.1:0", "public_ip": "192.0.2.7",
		"ice_servers": [{"urls": ["stun:stun.example.com:3478"]}, {"urls": ["turn:turn.example.com"], "username": "u", "credential": "c"}]}}`))
	require.NoError(t, err)
	s := serveNode(t, cfg, Options{})
	_, data := newWithOffer(t, s, `{}`)
	assert.Equal(t, []any{
		map[string]any{"urls": []any{"stun:stun.example.com:3478"}},
		map[string]any{"urls": []any{"turn:turn.example.com"}, "username": "u", "credential": "c"},
	}, data["ice_servers2"])
	assert.Contains(t, data["sdp"].(map[string]any)["sdp"], "192.0.2.7", "public_ip is in the server's candidates")
}

// TestMediaNeedsNodeURLWithRedis checks that a node of several (Redis)
// with media on refuses to start without media.node_url.
func TestMediaNeedsNodeURLWithRedis(t *testing.T) {
	srv := redistest.Start(t)
	cfg := Demo()
	cfg.Redis = RedisConfig{Addr: srv.Addr(), Prefix: "media-url-test"}
	_, err := New(context.Background(), cfg, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "media.node_url")
}

// TestMediaDrain checks that a draining node closes its media sessions
// with reason shutdown at the drain timeout: a peer connection cannot move
// to another node.
func TestMediaDrain(t *testing.T) {
	srv := redistest.Start(t)
	cfg := Demo()
	cfg.Redis = RedisConfig{Addr: srv.Addr(), Prefix: "media-drain-test"}
	cfg.Shutdown = ShutdownConfig{DrainTimeout: 2 * time.Second}
	cfg.Media.NodeURL = "http://127.0.0.1:1" // a is drained before b needs to reach it
	a := serveNode(t, cfg, Options{})
	cfgB := *cfg
	cfgB.Media.Enabled = false
	b := serveNode(t, &cfgB, Options{})

	id, data := newWithOffer(t, a, `{}`)
	connectMedia(t, a, id, data)
	eventually(t, 10*time.Second, "the session is connected by its peer", func() bool {
		return state(t, a.node, id).State.String() == "connected"
	})
	_, plain := newWithOffer(t, a, `{"version":"v2"}`)

	start := time.Now()
	require.NoError(t, a.end(t))
	assert.Less(t, time.Since(start), cfg.Shutdown.DrainTimeout+time.Second, "within the drain timeout")
	info := state(t, b.node, id)
	assert.Equal(t, "closed", info.State.String(), "the media session ended with its node")
	assert.Equal(t, session.ReasonShutdown, info.Reason)
	other := state(t, b.node, plain["session_id"].(string))
	assert.Equal(t, "new", other.State.String(), "a session without media survives the drain")
	require.NoError(t, b.end(t))
}

// TestMediaNodeDrain checks Node.Drain, for a program that serves the
// node's handler itself: the media session is closed with reason shutdown
// within ctx, the node's other work left to another node.
func TestMediaNodeDrain(t *testing.T) {
	srv := redistest.Start(t)
	cfg := Demo()
	cfg.Redis = RedisConfig{Addr: srv.Addr(), Prefix: "media-node-drain-test"}
	cfg.Media.NodeURL = "http://127.0.0.1:1"
	n, err := New(context.Background(), cfg, Options{})
	require.NoError(t, err)
	ts := httptest.NewServer(n.Handler())
	defer ts.Close()
	s := &served{node: n, base: ts.URL}
	id, data := newWithOffer(t, s, `{}`)
	connectMedia(t, s, id, data)
	eventually(t, 10*time.Second, "the session is connected by its peer", func() bool {
		return state(t, n, id).State.String() == "connected"
	})
	ts.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	require.NoError(t, n.Drain(ctx))
	got, err := readElsewhere(t, cfg, id)
	require.NoError(t, err)
	assert.Equal(t, "closed", got.State.String())
	assert.Equal(t, session.ReasonShutdown, got.Reason)
}

// readElsewhere reads a session through a second node on the same Redis,
// media off (the drained node's manager has left).
func readElsewhere(t *testing.T, cfg *Config, id string) (session.Info, error) {
	t.Helper()
	other := *cfg
	other.Media.Enabled = false
	n, err := New(context.Background(), &other, Options{})
	require.NoError(t, err)
	defer n.Close()
	return n.Manager.Get(context.Background(), "demo-pro", id)
}
