// Package sdktest runs HeyGen's own JavaScript SDK, @heygen/streaming-avatar
// 2.1.0, against the server: its tests start the whole service on loopback,
// then run testdata/sdk.mjs under node, which drives the SDK's REST-level
// methods (newSession with the SDK's full body, startSession, speak,
// interrupt, keepAlive, startListening, stopListening, stopAvatar) and its
// realtime socket (connectWebSocket with the bearer token as session_token),
// and prints one JSON line per step for the tests to check. A wrong-state
// call must surface as the SDK's APIError carrying the server's body.
//
// The SDK's media path (createStartAvatar and startAvatar join a LiveKit
// room with the url and access_token of streaming.new) is not driven: the
// server serves no LiveKit room.
//
// The package has no API; its tests are the point. They need node (20 or
// later) and the SDK installed into testdata/node_modules (git ignores it):
//
//	npm ci --no-audit --no-fund --ignore-scripts --prefix internal/sdktest/testdata
//
// .ci/run does that. Without node or the SDK the tests skip with a message;
// with CI set, they fail.
package sdktest
