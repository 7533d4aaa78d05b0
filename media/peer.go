package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/session"
)

// StreamID is the id of the one media stream holding the video and audio
// tracks (clients take event.streams[0]).
const StreamID = "avatar"

// DataChannelLabel is the label of the data channel the server creates.
const DataChannelLabel = "events"

// peer is one session's PeerConnection and what plays on it.
type peer struct {
	e       *Engine
	account string
	id      string
	pc      *webrtc.PeerConnection
	video   *webrtc.TrackLocalStaticSample
	audio   *webrtc.TrackLocalStaticSample
	dc      *webrtc.DataChannel
	offer   webrtc.SessionDescription

	mu         sync.Mutex
	answered   bool                      // the client's answer is set
	pending    []webrtc.ICECandidateInit // candidates received before the answer
	isStarted  bool                      // the session moved to connecting
	connected  bool                      // ICE and DTLS are up
	joined     bool                      // Join was asked
	closing    bool                      // the Engine closes the peer: its closed state is not a loss
	player     Player
	task       string // the task spoken, "" when idle
	taskStart  time.Time
	taskTimer  *time.Timer
	closedOnce sync.Once
	dcOpen     bool
	unsent     [][]byte // events sent before the data channel opened
}

func (e *Engine) newPeer(ctx context.Context, account, id string) (*peer, error) {
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, sserrors.ErrInternalServerError.WithCause(err)
	}
	p := &peer{e: e, account: account, id: id, pc: pc}
	fail := func(err error) (*peer, error) {
		_ = pc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, sserrors.ErrInternalServerError.WithCause(err)
	}
	if p.video, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", StreamID); err != nil {
		return fail(err)
	}
	if p.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", StreamID); err != nil {
		return fail(err)
	}
	for _, t := range []webrtc.TrackLocal{p.video, p.audio} {
		if _, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			return fail(err)
		}
	}
	if p.dc, err = pc.CreateDataChannel(DataChannelLabel, nil); err != nil {
		return fail(err)
	}
	p.dc.OnOpen(p.onOpen)
	p.dc.OnClose(p.onDataChannelClose)
	pc.OnConnectionStateChange(p.onState)
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	p.offer = *pc.LocalDescription()
	return p, nil
}

// answer sets the client's answer and the candidates kept until then.
func (p *peer) answer(sd webrtc.SessionDescription) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return sserrors.ErrSessionNotFound
	}
	if p.answered {
		return sserrors.ErrInvalidParameter.WithCause(errors.New("media: the offer is already answered"))
	}
	if err := fitsOffer(p.offer, sd); err != nil {
		return sserrors.ErrInvalidParameter.WithCause(err)
	}
	if err := p.pc.SetRemoteDescription(sd); err != nil {
		return sserrors.ErrInvalidParameter.WithCause(err)
	}
	p.answered = true
	for _, c := range p.pending {
		_ = p.pc.AddICECandidate(c) // checked when received; one the answer does not fit is ignored, as a browser does
	}
	p.pending = nil
	return nil
}

// fitsOffer checks that answer has the offer's media sections, in order
// and with the same mids: pion accepts an answer with fewer.
func fitsOffer(offer, answer webrtc.SessionDescription) error {
	o, err := offer.Unmarshal()
	if err != nil {
		return err
	}
	a, err := answer.Unmarshal()
	if err != nil {
		return err
	}
	if len(a.MediaDescriptions) != len(o.MediaDescriptions) {
		return fmt.Errorf("media: the answer has %d media sections, the offer %d", len(a.MediaDescriptions), len(o.MediaDescriptions))
	}
	for i, om := range o.MediaDescriptions {
		am := a.MediaDescriptions[i]
		omid, _ := om.Attribute("mid")
		amid, _ := am.Attribute("mid")
		if am.MediaName.Media != om.MediaName.Media || amid != omid {
			return fmt.Errorf("media: answer section %d is %s %q, the offer's %s %q", i, am.MediaName.Media, amid, om.MediaName.Media, omid)
		}
	}
	return nil
}

// maxPendingCandidates bounds the candidates kept before the answer.
const maxPendingCandidates = 64

func (p *peer) addCandidate(c webrtc.ICECandidateInit) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.answered {
		if len(p.pending) == maxPendingCandidates {
			return sserrors.ErrInvalidParameter.WithCause(errors.New("media: too many candidates before the answer"))
		}
		p.pending = append(p.pending, c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return sserrors.ErrInvalidParameter.WithCause(err)
	}
	return nil
}

// started records that the session is connecting, and joins it when the
// peer connected first.
func (p *peer) started() {
	p.mu.Lock()
	p.isStarted = true
	join := p.connected && !p.joined
	p.joined = p.joined || join
	p.mu.Unlock()
	if join {
		p.join()
	}
}

func (p *peer) onState(s webrtc.PeerConnectionState) {
	if h := p.e.hooks.PeerState; h != nil {
		h(session.ShortHash(p.id), s)
	}
	switch s {
	case webrtc.PeerConnectionStateConnected:
		p.mu.Lock()
		if p.closing || p.connected {
			p.mu.Unlock()
			return
		}
		p.connected = true
		join := p.isStarted && !p.joined
		p.joined = p.joined || join
		p.player = p.e.source.NewPlayer(output{p})
		p.mu.Unlock()
		if join {
			p.join()
		}
	case webrtc.PeerConnectionStateFailed:
		if p.markClosing() {
			p.e.lost(p)
		}
	case webrtc.PeerConnectionStateClosed: // the client's DTLS close_notify
		if p.markClosing() {
			p.e.closedByClient(p)
		}
	}
}

// join moves the session to connected: its media is up.
func (p *peer) join() {
	if _, err := p.e.mgr.Join(context.Background(), p.account, p.id); err != nil {
		if !isStateError(err) {
			p.e.fail(p, "join", err)
		}
		p.e.drop(p.id)
	}
}

// markClosing marks the peer as closed by the Engine; it reports false when
// it already was.
func (p *peer) markClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.closing = true
	return true
}

// close stops the player and the speech timer and closes the peer
// connection. It may be called more than once.
func (p *peer) close() {
	p.closedOnce.Do(func() {
		p.mu.Lock()
		p.closing = true
		player := p.player
		if p.taskTimer != nil {
			p.taskTimer.Stop()
		}
		p.mu.Unlock()
		if player != nil {
			player.Close()
		}
		_ = p.pc.Close()
	})
}

// The talking events of the data channel, sent as binary JSON (HeyGen's SDK
// 1.x parses only binary messages).
type talkingEvent struct {
	Type       string `json:"type"`
	TaskID     string `json:"task_id"`
	DurationMS *int64 `json:"duration_ms,omitempty"`
}

func (p *peer) say(taskID string, d time.Duration) {
	p.mu.Lock()
	if p.closing || !p.connected {
		p.mu.Unlock()
		return
	}
	p.endTaskLocked()
	p.task, p.taskStart = taskID, time.Now()
	p.taskTimer = time.AfterFunc(d, func() { p.endTask(taskID) })
	p.player.Talking(true)
	p.send(talkingEvent{Type: "avatar_start_talking", TaskID: taskID})
	p.mu.Unlock()
}

func (p *peer) hush() {
	p.mu.Lock()
	p.endTaskLocked()
	p.mu.Unlock()
}

// endTask ends task taskID when its speech time is over, unless another
// task replaced it.
func (p *peer) endTask(taskID string) {
	p.mu.Lock()
	if p.task == taskID {
		p.endTaskLocked()
	}
	p.mu.Unlock()
}

// endTaskLocked ends the task spoken, if any: idle media, and
// avatar_stop_talking with the time spoken. p.mu is held.
func (p *peer) endTaskLocked() {
	if p.task == "" {
		return
	}
	p.taskTimer.Stop()
	ms := time.Since(p.taskStart).Milliseconds()
	if !p.closing {
		p.player.Talking(false)
		p.send(talkingEvent{Type: "avatar_stop_talking", TaskID: p.task, DurationMS: &ms})
	}
	p.task, p.taskTimer = "", nil
}

// maxUnsent bounds the events kept until the data channel opens.
const maxUnsent = 16

// send writes ev on the data channel as a binary message, or keeps it until
// the channel opens (it opens just after the peer connects). p.mu is held.
func (p *peer) send(ev talkingEvent) {
	b, err := json.Marshal(ev)
	if err != nil {
		p.e.fail(p, "send", err)
		return
	}
	if !p.dcOpen {
		if len(p.unsent) < maxUnsent {
			p.unsent = append(p.unsent, b)
		}
		return
	}
	if err := p.dc.Send(b); err != nil && !p.closing {
		p.e.fail(p, "send", err)
	}
}

// onOpen sends the events kept until the data channel opened.
func (p *peer) onOpen() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dcOpen = true
	for _, b := range p.unsent {
		if err := p.dc.Send(b); err != nil && !p.closing {
			p.e.fail(p, "send", err)
		}
	}
	p.unsent = nil
}

// onDataChannelClose treats the data channel closed by the client (its
// peer connection closed: browsers end the SCTP association at once, while
// ICE would only report the peer disconnected) as the media lost.
func (p *peer) onDataChannelClose() {
	if p.markClosing() {
		p.e.closedByClient(p)
	}
}

// output writes a Player's samples to the peer's tracks.
type output struct{ p *peer }

func (o output) WriteVideo(s Sample) error {
	return o.p.video.WriteSample(pionmedia.Sample{Data: s.Data, Duration: s.Duration})
}

func (o output) WriteAudio(s Sample) error {
	return o.p.audio.WriteSample(pionmedia.Sample{Data: s.Data, Duration: s.Duration})
}

// ParseAnswer reads the sdp of streaming.start: {"type":"answer","sdp":…}
// with a session description that parses. Anything else is 400175.
func ParseAnswer(raw []byte) (webrtc.SessionDescription, error) {
	var sd webrtc.SessionDescription
	if err := json.Unmarshal(raw, &sd); err != nil {
		return sd, sserrors.ErrInvalidParameter.WithCause(err)
	}
	if sd.Type != webrtc.SDPTypeAnswer || strings.TrimSpace(sd.SDP) == "" {
		return sd, sserrors.ErrInvalidParameter.WithCause(errors.New("media: sdp is not an answer"))
	}
	parsed, err := sd.Unmarshal()
	if err != nil {
		return sd, sserrors.ErrInvalidParameter.WithCause(err)
	}
	if len(parsed.MediaDescriptions) == 0 {
		return sd, sserrors.ErrInvalidParameter.WithCause(errors.New("media: answer without media"))
	}
	return sd, nil
}

// ParseCandidate reads the candidate of streaming.ice:
// {"candidate","sdpMid","sdpMLineIndex","usernameFragment"}. An empty
// candidate string is an end-of-candidates; any other must parse as an ICE
// candidate. Anything else is 400175.
func ParseCandidate(raw []byte) (webrtc.ICECandidateInit, error) {
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, sserrors.ErrInvalidParameter.WithCause(err)
	}
	return c, checkCandidate(c)
}

func checkCandidate(c webrtc.ICECandidateInit) error {
	if c.Candidate == "" {
		return nil
	}
	if _, err := ice.UnmarshalCandidate(strings.TrimPrefix(c.Candidate, "candidate:")); err != nil {
		return sserrors.ErrInvalidParameter.WithCause(err)
	}
	return nil
}
