package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
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

// startMedia serves streaming.start for a session with a peer: forwarded
// to the node holding it when that is another (forwardMedia); here, with
// an answer the session goes to connecting and its peer connects it,
// without one the peer is freed and the session starts as without media.
// handled is false when the session has no peer.
func (s *Server) startMedia(r *http.Request, account, id string, sdp json.RawMessage) (a any, handled bool, err error) {
	body := map[string]any{"session_id": id}
	if present(sdp) {
		body["sdp"] = sdp
	}
	if a, ok, err := s.forwardMedia(r, id, body); ok {
		return a, true, err
	}
	if s.media == nil || !s.media.Has(id) {
		return nil, false, nil
	}
	ctx := r.Context()
	if !present(sdp) {
		if _, err := s.mgr.Start(ctx, account, id); err != nil {
			return nil, true, err
		}
		s.media.Release(id)
		return nil, true, nil
	}
	answer, err := media.ParseAnswer(sdp)
	if err != nil {
		return nil, true, err
	}
	_, err = s.media.Start(ctx, account, id, answer)
	return nil, true, err
}

// iceMedia gives a candidate to the session's peer: here, or forwarded to
// the node holding it. The session's state was checked.
func (s *Server) iceMedia(r *http.Request, account, id string, candidate json.RawMessage) (any, error) {
	if a, ok, err := s.forwardMedia(r, id, map[string]any{"session_id": id, "candidate": candidate}); ok {
		return a, err
	}
	if s.media == nil || !s.media.Has(id) {
		return nil, nil
	}
	c, err := media.ParseCandidate(candidate)
	if err != nil {
		return nil, err
	}
	return nil, s.media.AddCandidate(account, id, c)
}

// forwardedHeader marks a call one node forwarded to the node holding the
// session's peer: that node never forwards it again.
const forwardedHeader = "X-Streamsession-Forwarded"

// forwardTimeout bounds a forwarded call.
const forwardTimeout = 10 * time.Second

// forwardMedia sends a streaming.start or streaming.ice for a session whose
// peer another node holds (Config.Media with a media.Directory) to that
// node, with the caller's credentials and body, and returns its answer as
// it is. handled is false when the peer is here, or nowhere. A node that
// cannot be reached answers 503/400558.
func (s *Server) forwardMedia(r *http.Request, id string, body map[string]any) (a any, handled bool, err error) {
	if s.media == nil || r.Header.Get(forwardedHeader) != "" {
		return nil, false, nil
	}
	node, err := s.media.Holder(r.Context(), id)
	if err != nil || node == "" {
		return nil, err != nil, err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, true, sserrors.ErrInvalidParameter.WithCause(err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), forwardTimeout)
	defer cancel()
	fwd, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(node, "/")+r.URL.Path, bytes.NewReader(b))
	if err != nil {
		return nil, true, errUnavailable.WithCause(err)
	}
	for _, h := range []string{"Authorization", "X-Api-Key"} {
		if v := r.Header.Get(h); v != "" {
			fwd.Header.Set(h, v)
		}
	}
	fwd.Header.Set("Content-Type", "application/json")
	fwd.Header.Set(forwardedHeader, "1")
	resp, err := http.DefaultClient.Do(fwd)
	if err != nil {
		return nil, true, errUnavailable.WithCause(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, DefaultMaxBodyBytes))
	if err != nil {
		return nil, true, errUnavailable.WithCause(err)
	}
	return forwardedAnswer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: out}, true, nil
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

// forwardedAnswer is the answer of the node holding a session's peer to a
// forwarded call, written back as it came.
type forwardedAnswer struct {
	status      int
	contentType string
	body        []byte
}

func (a forwardedAnswer) write(w http.ResponseWriter) {
	if a.contentType != "" {
		w.Header().Set("Content-Type", a.contentType)
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}
