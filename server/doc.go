// Package server is the HTTP and realtime WebSocket layer of streamsession:
// a HeyGen-compatible Streaming API (the wire contract in the
// repository's docs/wire.md) on top of a [session.Manager].
//
// Start with [New]: it returns a [Server], an [net/http.Handler] that serves
// every endpoint under /v1/ and the realtime socket at
// /v1/ws/streaming.chat. Mount it in your own mux with
// mux.Handle("/v1/", srv) and call [Server.Shutdown] when you stop serving.
//
// # What the package owns
//
//   - Authentication: X-Api-Key through an [Accounts] lookup, and bearer
//     tokens from streaming.create_token, kept in a [TokenStore] (an
//     in-memory one by default, see [NewMemoryTokens]).
//   - Request decoding: bodies are limited to Config.MaxBodyBytes (1 MiB);
//     validation maps to the catalog's codes (see "Decisions" below).
//   - The realtime socket's upgrade: origin, token and state checks, then the
//     connection is handed to package [realtime], which runs the sockets and
//     the simulated speech (and, with Config.Relay, what several nodes need).
//
// The package does not log. It reports what happens through [Hooks] (sockets
// opened and closed, refused requests), never with a raw token, API key or
// session id: hooks receive [session.ShortHash] of the session id.
//
// # Concurrency
//
// A [Server] is safe for concurrent use by multiple goroutines. It takes one
// [session.Manager.Subscribe] subscription for the whole server and routes
// each transition to the socket of its session (at most one per session on
// this node); with a Relay, one Relay subscription likewise for speech
// commands. Per-node state lives behind small types: bearer tokens behind
// [TokenStore]; the session access token is stateless (sealed under a key
// derived from Config.Secret, so nodes sharing the secret accept each
// other's tokens).
//
// # Decisions (ours, where the wire contract leaves a choice)
//
//   - A body larger than MaxBodyBytes: HTTP 413 with code 400175
//     ("Invalid parameter"); nothing changes.
//   - An empty body is read as {}. A body that is not a JSON object, trailing
//     data after it, or a required field missing (session_id, text,
//     candidate): 400/40001. A field of the wrong JSON type, or out of range
//     (activity_idle_timeout outside 30–3600 or not an integer, quality not
//     high|medium|low, video_encoding not H264|VP8, voice.rate outside
//     0.5–1.5, voice.emotion not one of excited, serious, friendly, soothing,
//     broadcaster, task_type not repeat|chat|talk, task_mode not sync|async;
//     enum values are matched case-insensitively): 400/400175. Unknown fields
//     are ignored; version is accepted as given.
//   - Validation happens before the session is looked up, so a bad body is
//     400 even for an unknown session.
//   - An unknown path: 404 with code 40051 ("Resource is not found"). A known
//     path with the wrong method: 405 with an Allow header and code 40051.
//   - streaming.create_token needs X-Api-Key; a bearer token cannot mint
//     another token (401/400112).
//   - A bearer token's streaming.new that fails (a limit, an unknown avatar)
//     does not spend the token. A second streaming.new racing the first one
//     with the same token is refused with 401/400112.
//   - A bearer token bound to a session that is no longer addressable (past
//     its retention window) is deleted, and the call answers 401/400112.
//   - The access_token of streaming.new authorises only the realtime socket.
//     It is base64url of the account sealed with AES-256-GCM under a key
//     derived from Config.Secret, with the session id as authenticated
//     data: it shows neither. It carries no expiry: the session's own life
//     bounds it.
//   - Bearer tokens: at most a bound per account outstanding
//     ([MemoryTokensConfig].MaxPerAccount, default
//     [DefaultMaxTokensPerAccount]); past it streaming.create_token answers
//     429/400140 with a Retry-After ([TooManyTokens]), for that account
//     only. streaming.new spends its token: [TokenStore].Reserve, the
//     session's creation, then [TokenStore].Bind (or Release when the
//     creation fails; when Bind fails the session is stopped).
//   - A bearer token acts on the session it created and no other:
//     streaming.list with it lists that session alone (none before it made
//     one); the realtime socket accepts it for that session only (an
//     unspent token, or another session's, is 401/400112 and cannot replace
//     the session's connection); an Idempotency-Key sent with it is scoped
//     to it. The API key keeps the whole account. See docs/auth.md.
//   - streaming.list: created_at is Unix seconds; sessions are in creation
//     order; only new, connecting and connected sessions are listed.
//   - streaming.task: task_type (repeat, chat, talk) all speak the given text;
//     task_mode sync and async both answer at once with {task_id,
//     duration_ms}. A new task while the avatar speaks cuts the current one
//     short (its avatar_stop_talking has "interrupted": true).
//   - Origin of the realtime socket: an upgrade without an Origin header is
//     allowed; otherwise the Origin must equal the request's own origin
//     (same host) or be allowed by Config.Origins ("*" allows any).
//     Refused: 403 with code 400562 ("forbidden"). API calls are not refused
//     for their origin: an origin Config.Origins does not allow gets its
//     answer without CORS headers, so its browser withholds it from the page.
//   - The socket upgrade is checked in this order: a draining or shut-down
//     node (503/400558 with a Retry-After), origin (403/400562), token (401
//     for a wrong or missing token), the account's request budget
//     (429/400140 or 503/400558, as every API call), state (401 for an
//     unknown session, like a wrong token; 400/1000x for a session in
//     neither connecting nor connected), the WebSocket handshake headers
//     (400/400175). Only then does the session move to connected.
package server
