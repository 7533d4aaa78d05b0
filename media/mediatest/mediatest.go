// Package mediatest gives tests and benchmarks a client peer for package
// media: a pion peer that answers the server's offer as a browser running
// HeyGen's SDK 1.x does, restricted to loopback (host candidates on lo
// only, no mDNS) so that ICE never sends outside the machine.
package mediatest

import (
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// LoopbackAPI returns a pion API whose peers gather and accept loopback
// UDP candidates only, with the default codecs and no logging.
func LoopbackAPI() (*webrtc.API, error) {
	se := webrtc.SettingEngine{LoggerFactory: &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled}}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se)), nil
}

// Client is a client peer. Its channels are buffered; a test reads what it
// needs. It is safe for concurrent use by multiple goroutines.
type Client struct {
	PC *webrtc.PeerConnection
	// Candidates receives the client's candidates as they are gathered
	// (trickled, as the SDK sends them with streaming.ice).
	Candidates chan webrtc.ICECandidateInit
	// Tracks receives the server's tracks.
	Tracks chan *webrtc.TrackRemote
	// Opened receives the label of the server's data channel once open.
	Opened chan string
	// Messages receives the data channel's messages.
	Messages chan webrtc.DataChannelMessage
}

// Answer makes a client peer on api for offer and returns it with its
// answer (without candidates: they arrive on Candidates). Close its PC when
// done.
func Answer(api *webrtc.API, offer webrtc.SessionDescription) (*Client, webrtc.SessionDescription, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, webrtc.SessionDescription{}, err
	}
	c := &Client{PC: pc, Candidates: make(chan webrtc.ICECandidateInit, 16), Tracks: make(chan *webrtc.TrackRemote, 2),
		Opened: make(chan string, 1), Messages: make(chan webrtc.DataChannelMessage, 64)}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			select {
			case c.Candidates <- cand.ToJSON():
			default:
			}
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { c.Tracks <- tr })
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnOpen(func() { c.Opened <- dc.Label() })
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			select {
			case c.Messages <- m:
			default:
			}
		})
	})
	fail := func(err error) (*Client, webrtc.SessionDescription, error) {
		_ = pc.Close()
		return nil, webrtc.SessionDescription{}, err
	}
	if err := pc.SetRemoteDescription(offer); err != nil {
		return fail(err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(err)
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return fail(err)
	}
	return c, ans, nil
}

// Candidate returns the client's first candidate, waiting up to d.
func (c *Client) Candidate(d time.Duration) (webrtc.ICECandidateInit, error) {
	select {
	case cand := <-c.Candidates:
		return cand, nil
	case <-time.After(d):
		return webrtc.ICECandidateInit{}, fmt.Errorf("mediatest: no candidate in %v", d)
	}
}

// Message returns the next data channel message decoded from binary JSON,
// waiting up to d; a text message is an error.
func (c *Client) Message(d time.Duration) (map[string]any, error) {
	select {
	case m := <-c.Messages:
		if m.IsString {
			return nil, fmt.Errorf("mediatest: text message %q, want binary", m.Data)
		}
		var v map[string]any
		return v, json.Unmarshal(m.Data, &v)
	case <-time.After(d):
		return nil, fmt.Errorf("mediatest: no message in %v", d)
	}
}
