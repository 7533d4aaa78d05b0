package server

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// The media half of the HeyGen v1 wire (Config.Media): streaming.new makes
// the session's peer and answers its offer, streaming.start takes the
// client's answer, streaming.ice its candidates; tasks and interrupts are
// also spoken on the peer. Without Config.Media every answer is the one
// without media.

// mediaNewResponse is streaming.new's answer with an offer (v1).
type mediaNewResponse struct {
	newResponse
	SDP         webrtc.SessionDescription `json:"sdp"`
	ICEServers2 []media.ICEServer         `json:"ice_servers2"`
	ICEServers  []media.ICEServer         `json:"ice_servers"`
}

// wantsMedia says whether streaming.new makes a peer: with media on, for
// no version or "v1"; not for "v2". Another version is 400175.
func (s *Server) wantsMedia(version string) (bool, error) {
	if s.media == nil {
		return false, nil
	}
	switch strings.ToLower(version) {
	case "", "v1":
		return true, nil
	case "v2":
		return false, nil
	}
	return false, sserrors.ErrInvalidParameter
}

// withOffer makes the new session's peer and adds its offer to resp. When
// the peer cannot be made the session is stopped (its slot freed) and the
// error returned.
func (s *Server) withOffer(ctx context.Context, info session.Info, resp newResponse) (any, error) {
	offer, err := s.media.Offer(ctx, info.Account, info.ID)
	if err != nil {
		_, _ = s.mgr.Stop(context.WithoutCancel(ctx), info.Account, info.ID)
		return nil, err
	}
	servers := s.media.ICEServers()
	return mediaNewResponse{newResponse: resp, SDP: offer, ICEServers2: servers, ICEServers: servers}, nil
}

// present reports whether a JSON field was sent with a value.
func present(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// startMedia serves streaming.start for a session with a peer here: with
// an answer, the session goes to connecting and its peer connects it;
// without one, the peer is freed and the session starts as without media.
// handled is false when the session has no peer here.
func (s *Server) startMedia(ctx context.Context, account, id string, sdp json.RawMessage) (handled bool, err error) {
	if s.media == nil || !s.media.Has(id) {
		return false, nil
	}
	if !present(sdp) {
		if _, err := s.mgr.Start(ctx, account, id); err != nil {
			return true, err
		}
		s.media.Release(id)
		return true, nil
	}
	answer, err := media.ParseAnswer(sdp)
	if err != nil {
		return true, err
	}
	_, err = s.media.Start(ctx, account, id, answer)
	return true, err
}

// iceMedia gives a candidate to the session's peer, if it has one here.
// The session's state was checked.
func (s *Server) iceMedia(account, id string, candidate json.RawMessage) error {
	if s.media == nil || !s.media.Has(id) {
		return nil
	}
	c, err := media.ParseCandidate(candidate)
	if err != nil {
		return err
	}
	return s.media.AddCandidate(account, id, c)
}

// mediaSay plays a task on the session's peer. With a Relay the peer's
// node plays what the relay carries instead (followRelay), wherever the
// task was received.
func (s *Server) mediaSay(id, taskID string, d time.Duration) {
	if s.media != nil && s.mediaRelay == nil {
		s.media.Say(id, taskID, d)
	}
}

// mediaHush interrupts the session's peer, as mediaSay plays.
func (s *Server) mediaHush(id string) {
	if s.media != nil && s.mediaRelay == nil {
		s.media.Hush(id)
	}
}

// followRelay subscribes Media, when there are both, to the Relay's speech
// commands: a task or an interrupt received by any node reaches the node
// holding the session's peer (the Engine ignores sessions it has no peer
// for).
func (s *Server) followRelay(relay realtime.Relay) error {
	if s.media == nil || relay == nil {
		return nil
	}
	eng := s.media
	cancel, err := relay.Subscribe(func(id string, msg realtime.RelayMessage) {
		switch msg.Kind {
		case realtime.RelaySpeak:
			eng.Say(id, msg.TaskID, msg.Duration)
		case realtime.RelayInterrupt:
			eng.Hush(id)
		}
	})
	if err != nil {
		return err
	}
	s.mediaRelay = sync.OnceFunc(cancel)
	return nil
}

func (s *Server) unfollowRelay() {
	if s.mediaRelay != nil {
		s.mediaRelay()
	}
}

// mediaJoins reports whether the session's peer, not its socket, moves it
// to connected.
func (s *Server) mediaJoins(id string) bool {
	return s.media != nil && s.media.Has(id)
}
