// Package sdk1test runs HeyGen's Streaming Avatar SDK 1.0.16 (raw WebRTC)
// in headless Chromium against a server with media: createStartAvatar
// receives the synthetic avatar's video, speak's talking events arrive on
// the data channel, stopAvatar closes the session. The SDK and esbuild are
// pinned in testdata (installed by .ci/run); the test bundles the SDK.
// Chromium sends ICE checks from every host candidate, so the test runs in
// a loopback-only network namespace: it re-executes itself under
// `unshare -n` (after `ip link set lo up`) when the machine has another
// interface up.
package sdk1test
