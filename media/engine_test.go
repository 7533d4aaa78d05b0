package media_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/session"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// connect runs the v1 flow to the end: offer, answer, candidates trickled
// before start, start; it returns once the session is connected.
func connect(t *testing.T, r *rig) (session.Info, *client) {
	t.Helper()
	ctx := context.Background()
	info, err := r.mgr.Create(ctx, acme, session.CreateOptions{})
	require.NoError(t, err)
	offer, err := r.eng.Offer(ctx, acme.Name, info.ID)
	require.NoError(t, err)
	require.Equal(t, webrtc.SDPTypeOffer, offer.Type)
	require.Contains(t, offer.SDP, "a=candidate:", "every server candidate is in the offer")
	require.Contains(t, offer.SDP, "a=end-of-candidates")
	require.NotContains(t, offer.SDP, ".local", "no mDNS candidates")

	c, ans := answer(t, loopbackAPI(t), offer)
	// The SDK trickles as soon as its answer is set, before start.
	select {
	case cand := <-c.Candidates:
		require.NoError(t, r.eng.AddCandidate(acme.Name, info.ID, cand))
	case <-time.After(5 * time.Second):
		t.Fatal("the client gathered no candidate")
	}
	got, err := r.eng.Start(ctx, acme.Name, info.ID, ans)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connecting, got.State, "start with an answer moves to connecting at once")
	up := r.waitSession(info.ID, fsm.Connected)
	t.Logf("start → connected %v", up.At.Sub(got.CreatedAt))
	select {
	case label := <-c.Opened:
		require.Equal(t, media.DataChannelLabel, label)
	case <-time.After(10 * time.Second):
		t.Fatal("the server's data channel did not open")
	}
	return info, c
}

func TestConnectedComesFromMedia(t *testing.T) {
	r := newRig(t, 0)
	info, c := connect(t, r)

	r.mu.Lock()
	log := append([]string(nil), r.log...)
	r.mu.Unlock()
	peerUp, connected := index(log, "peer:connected"), index(log, "session:connected")
	require.GreaterOrEqual(t, peerUp, 0, "log %v", log)
	assert.Less(t, peerUp, connected, "the session is connected only once ICE and DTLS are: %v", log)
	assert.Less(t, index(log, "session:connecting"), peerUp, "start moved the session to connecting first: %v", log)
	state, ok := r.eng.PeerState(info.ID)
	assert.True(t, ok)
	assert.Equal(t, webrtc.PeerConnectionStateConnected, state)

	// One stream, a VP8 and an Opus track, and media flowing on both.
	kinds := map[string]bool{}
	for range 2 {
		select {
		case tr := <-c.Tracks:
			kinds[tr.Codec().MimeType] = true
			assert.Equal(t, media.StreamID, tr.StreamID())
			_, _, err := tr.ReadRTP()
			require.NoError(t, err, "RTP on %s", tr.Codec().MimeType)
		case <-time.After(10 * time.Second):
			t.Fatalf("tracks received: %v", kinds)
		}
	}
	assert.Equal(t, map[string]bool{webrtc.MimeTypeVP8: true, webrtc.MimeTypeOpus: true}, kinds)
}

func TestTalkingEventsOnTheDataChannel(t *testing.T) {
	r := newRig(t, 0)
	info, c := connect(t, r)

	r.eng.Say(info.ID, "task-1", 150*time.Millisecond)
	start := c.nextMessage(t)
	assert.Equal(t, map[string]any{"type": "avatar_start_talking", "task_id": "task-1"}, start)
	stop := c.nextMessage(t)
	assert.Equal(t, "avatar_stop_talking", stop["type"])
	assert.Equal(t, "task-1", stop["task_id"])
	assert.GreaterOrEqual(t, stop["duration_ms"], float64(150))

	// An interrupt cuts a long task short.
	r.eng.Say(info.ID, "task-2", time.Hour)
	assert.Equal(t, "avatar_start_talking", c.nextMessage(t)["type"])
	r.eng.Hush(info.ID)
	stop = c.nextMessage(t)
	assert.Equal(t, "avatar_stop_talking", stop["type"])
	assert.Equal(t, "task-2", stop["task_id"])
	assert.Less(t, stop["duration_ms"], float64(time.Hour/time.Millisecond))
	r.eng.Hush(info.ID) // nothing spoken: no event
	select {
	case m := <-c.Messages:
		t.Fatalf("unexpected message %s", m.Data)
	default:
	}
}

func TestClientClosingItsPeerClosesTheSessionMediaLost(t *testing.T) {
	r := newRig(t, 0)
	info, c := connect(t, r)

	require.NoError(t, c.pc.GracefulClose())
	ev := r.waitSession(info.ID, fsm.Closed)
	assert.Equal(t, session.ReasonMediaLost, ev.Reason)
	assert.Equal(t, "media_lost", ev.Reason.String())
	assert.False(t, r.eng.Has(info.ID))
}

// SDK 1.x's stopAvatar closes its peer, then calls stop: within
// ClosedGrace the session ends as stopped, not lost.
func TestClientStopAfterClosingItsPeerIsAStop(t *testing.T) {
	r := newRigWith(t, 0, time.Hour)
	info, c := connect(t, r)
	require.NoError(t, c.pc.Close())
	r.waitFor("peer closed", func(log []string, _ []session.Event) bool { return index(log, "peer:closed") >= 0 })
	_, err := r.mgr.Stop(context.Background(), acme.Name, info.ID)
	require.NoError(t, err, "the session waits for the client's stop")
	ev := r.waitSession(info.ID, fsm.Closed)
	assert.Equal(t, session.ReasonStop, ev.Reason)
}

func TestStopClosesThePeer(t *testing.T) {
	r := newRig(t, 0)
	info, c := connect(t, r)

	closed := make(chan struct{})
	c.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateClosed || s == webrtc.PeerConnectionStateFailed {
			select {
			case <-closed:
			default:
				close(closed)
			}
		}
	})
	_, err := r.mgr.Stop(context.Background(), acme.Name, info.ID)
	require.NoError(t, err)
	r.waitFor("peer closed", func(log []string, _ []session.Event) bool { return index(log, "peer:closed") >= 0 })
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the client's peer did not see the server close")
	}
	ev := r.waitSession(info.ID, fsm.Closed)
	assert.Equal(t, session.ReasonStop, ev.Reason, "the server's own close is not a media loss")
}

func TestPendingOfferExpiresWithTheJoinTimeout(t *testing.T) {
	r := newRig(t, 300*time.Millisecond)
	ctx := context.Background()
	info, err := r.mgr.Create(ctx, acme, session.CreateOptions{})
	require.NoError(t, err)
	_, err = r.eng.Offer(ctx, acme.Name, info.ID)
	require.NoError(t, err)
	require.True(t, r.eng.Has(info.ID))

	ev := r.waitSession(info.ID, fsm.Closed)
	assert.Equal(t, session.ReasonJoin, ev.Reason)
	r.waitFor("peer closed", func(log []string, _ []session.Event) bool { return index(log, "peer:closed") >= 0 })
	assert.False(t, r.eng.Has(info.ID))
}

func TestMalformedAnswerAndCandidateChangeNothing(t *testing.T) {
	r := newRig(t, 0)
	ctx := context.Background()
	info, err := r.mgr.Create(ctx, acme, session.CreateOptions{})
	require.NoError(t, err)
	offer, err := r.eng.Offer(ctx, acme.Name, info.ID)
	require.NoError(t, err)

	for _, raw := range []string{
		`"v=0"`, `{}`, `{"type":"offer","sdp":"v=0"}`, `{"type":"answer","sdp":""}`,
		`{"type":"answer","sdp":"not an sdp"}`, `{"type":"answer","sdp":"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}`,
	} {
		_, err := media.ParseAnswer([]byte(raw))
		assert.Equal(t, sserrors.CodeInvalidParameter, sserrors.CodeOf(err), "ParseAnswer(%s)", raw)
	}
	for _, raw := range []string{`"x"`, `{"candidate":"nonsense"}`, `{"candidate":"candidate:1 1 udp"}`, `{"candidate":7}`} {
		_, err := media.ParseCandidate([]byte(raw))
		assert.Equal(t, sserrors.CodeInvalidParameter, sserrors.CodeOf(err), "ParseCandidate(%s)", raw)
	}
	end, err := media.ParseCandidate([]byte(`{"candidate":""}`))
	require.NoError(t, err, "end of candidates")
	require.NoError(t, r.eng.AddCandidate(acme.Name, info.ID, end))

	// An answer that parses but does not fit the offer (its own offer).
	other, err := loopbackAPI(t).NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	defer other.Close()
	_, err = other.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo)
	require.NoError(t, err)
	o, err := other.CreateOffer(nil)
	require.NoError(t, err)
	wrong := webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: o.SDP}
	_, err = r.eng.Start(ctx, acme.Name, info.ID, wrong)
	assert.Equal(t, sserrors.CodeInvalidParameter, sserrors.CodeOf(err), "Start with an answer to another offer: %v", err)

	got, err := r.mgr.Get(ctx, acme.Name, info.ID)
	require.NoError(t, err)
	assert.Equal(t, fsm.New, got.State, "nothing changed")

	// Another account's session is unknown; the right answer still works.
	_, err = r.eng.Start(ctx, "mallory", info.ID, wrong)
	assert.Equal(t, sserrors.CodeSessionNotFound, sserrors.CodeOf(err))
	assert.Equal(t, sserrors.CodeSessionNotFound, sserrors.CodeOf(r.eng.AddCandidate("mallory", info.ID, end)))
	_, ans := answer(t, loopbackAPI(t), offer)
	got, err = r.eng.Start(ctx, acme.Name, info.ID, ans)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connecting, got.State)
	_, err = r.eng.Start(ctx, acme.Name, info.ID, ans)
	assert.Equal(t, sserrors.CodeSessionStateConnecting, sserrors.CodeOf(err))
}

func TestOfferShape(t *testing.T) {
	r := newRig(t, 0)
	ctx := context.Background()
	info, err := r.mgr.Create(ctx, acme, session.CreateOptions{})
	require.NoError(t, err)
	offer, err := r.eng.Offer(ctx, acme.Name, info.ID)
	require.NoError(t, err)
	again, err := r.eng.Offer(ctx, acme.Name, info.ID)
	require.NoError(t, err)
	assert.Equal(t, offer, again, "one peer per session")

	sd, err := offer.Unmarshal()
	require.NoError(t, err)
	var kinds []string
	for _, m := range sd.MediaDescriptions {
		kinds = append(kinds, m.MediaName.Media)
	}
	assert.Equal(t, []string{"video", "audio", "application"}, kinds)
	assert.Contains(t, offer.SDP, "VP8/90000")
	assert.Contains(t, offer.SDP, "opus/48000/2")
	assert.Contains(t, offer.SDP, "msid:"+media.StreamID+" video")
	assert.Contains(t, offer.SDP, "msid:"+media.StreamID+" audio")
	port := r.eng.UDPAddr().String()
	for _, line := range strings.Split(offer.SDP, "\r\n") {
		if strings.HasPrefix(line, "a=candidate:") {
			assert.Contains(t, line, strings.Replace(port, ":", " ", 1), "candidates on the shared port")
		}
	}
	b, err := json.Marshal(r.eng.ICEServers())
	require.NoError(t, err)
	assert.JSONEq(t, `[{"urls":["stun:127.0.0.1:3478"]}]`, string(b))
}

func TestDrainWaitsThenClosesWithShutdown(t *testing.T) {
	r := newRig(t, 0)
	first, _ := connect(t, r)
	second, _ := connect(t, r)

	// A session that ends by itself while draining.
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		drained <- r.eng.Drain(ctx)
	}()
	_, err := r.mgr.Stop(context.Background(), acme.Name, first.ID)
	require.NoError(t, err)
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v with a session left", err)
	case <-time.After(50 * time.Millisecond):
	}

	// New offers are refused while draining.
	info, err := r.mgr.Create(context.Background(), acme, session.CreateOptions{})
	require.NoError(t, err)
	_, err = r.eng.Offer(context.Background(), acme.Name, info.ID)
	assert.Equal(t, sserrors.CodeAPIConnectionError, sserrors.CodeOf(err))

	// The drain timeout closes the rest with reason shutdown.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, r.eng.Drain(ctx), context.Canceled)
	ev := r.waitSession(second.ID, fsm.Closed)
	assert.Equal(t, session.ReasonShutdown, ev.Reason)
	select {
	case err := <-drained:
		assert.NoError(t, err, "the first Drain saw every peer end")
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return once the peers had ended")
	}
}
