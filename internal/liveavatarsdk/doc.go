// Package liveavatarsdk runs HeyGen's LiveAvatar web SDK,
// @heygen/liveavatar-web-sdk 0.0.18, against the LiveAvatar surface
// (server/liveavatar): its tests serve one node, or two nodes on a real
// redis-server, on loopback, then run testdata/lite.mjs under node 20
// (--experimental-websocket, with stubs for the three WebRTC globals the
// SDK's LiveKit Room needs at construction; LITE mode never uses them). The
// script drives a whole LITE session (start, audio speech and its events,
// listening, interrupt, keep-alive, stop), a failed start (a FULL token)
// and a session the server closes, printing one JSON line per step; the
// tests check the steps and log them with their timings.
//
// The package has no API; its tests are the point. They need node (20 or
// later) and the SDK installed into testdata/node_modules (git ignores it):
//
//	npm ci --no-audit --no-fund --ignore-scripts --prefix internal/liveavatarsdk/testdata
//
// .ci/run does that. Without node or the SDK the tests skip with a message;
// with CI set, they fail.
package liveavatarsdk
