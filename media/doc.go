// Package media serves a session's avatar over WebRTC (HeyGen's v1 "raw
// WebRTC" flow, what SDK 1.x drives) and lets the media path, not a
// socket, decide when a session is connected.
//
// An Engine owns one pion/webrtc peer per session, every peer on one
// shared UDP port (ICE UDP mux). Offer makes a new session's peer and its
// offer, every server candidate gathered (no server-side trickle): one VP8
// and one Opus track in one media stream (StreamID), and a data channel
// the server creates (DataChannelLabel). AddCandidate takes the client's
// candidates, kept until the answer when they come first; Start applies the
// answer and moves the session to connecting.
//
// The peers drive the sessions, never the other way: a peer connected
// (ICE and DTLS up) joins its session (connecting → connected); a peer
// failed, or closed by the client (its DTLS close or its data channel
// ending) and not stopped by it within Config.ClosedGrace, closes the
// session with session.ReasonMediaLost; a peer only
// disconnected closes nothing (ICE may recover). The session closing for
// any reason (stop, a timer, shutdown) closes its peer. A pending offer is
// a session in state new: it holds a slot of the account's limits and ends
// with the session's join timeout.
//
// What plays is a Source: a backend plugs in its own renderer; the default
// is SyntheticAvatar, an idle loop and a talking clip made with ffmpeg
// (avatar/make.sh) and embedded. Say and Hush time a task's speech: the
// data channel carries avatar_start_talking and avatar_stop_talking as
// binary JSON messages (SDK 1.x parses only binary ones), and the Player
// switches between idle and talking media.
//
// Concurrency: Engine is safe for concurrent use by multiple goroutines. It
// runs, per connected peer, one player goroutine besides pion's own, and
// none per pending offer beyond pion's.
package media
