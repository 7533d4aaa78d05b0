// Package liveavatar serves LiveAvatar's session API (api.liveavatar.com,
// LITE mode) over the same [session.Manager], limits and account keys as
// package server's Streaming API: a second surface that translates paths,
// names, codes and envelopes and keeps no session state of its own.
//
// # Mapping onto the engine
//
//   - POST /v1/sessions/token creates a session (state new, holding a slot
//     of the account's plan) and returns a session token;
//   - POST /v1/sessions/start moves it to connecting and returns the ws_url
//     of its LITE socket;
//   - opening that socket moves it to connected;
//   - POST /v1/sessions/stop, the idle timeout (5 minutes, pushed back by
//     keep-alive over REST or the socket and by every socket message) and
//     max_session_duration (counted from start) move it to closing, then
//     closed, and the socket hears both states before it closes.
//
// Sessions created by either surface share the account's limits and appear
// in both lists.
//
// # Tokens and the socket's credential
//
// A session token is a JWT (HS256 under a key derived from Config.Secret)
// whose payload carries session_id, start_session_data.mode (the web SDK
// decodes it to choose LITE or FULL) and the account sealed with
// AES-256-GCM, so it names no account. It authorises the calls of its own
// session only; start succeeds once, since it moves the session out of new.
// The ws_url carries a second sealed credential bound to the session, good
// only while the session is connecting: the first socket opened makes it
// connected, so the URL opens one socket. Any node holding the same secret
// accepts both.
//
// # Envelope and codes
//
// Every answer is {"code","data","message"}; success is code 1000 (the web
// SDK refuses anything else). Plan concurrency answers HTTP 403 with code
// 4003, as LiveAvatar does; validation failures answer 422 with FastAPI's
// {"detail":[{"loc","msg","type"}]}; every other refusal carries the code
// and status of our catalog (package errors). docs/liveavatar.md has the
// whole table.
//
// FULL mode needs a LiveKit server, which this project does not run: its
// tokens are validated and minted as documented, and start refuses them
// with HTTP 501 and code [CodeFullModeUnsupported].
package liveavatar
