// Drives HeyGen's LiveAvatar web SDK (@heygen/liveavatar-web-sdk 0.0.18) in
// LITE mode against a streamsession server, under Node 20 with
// --experimental-websocket. Usage:
//
//   node --experimental-websocket lite.mjs <apiUrl>
//
// It reads one JSON object per line on stdin (the Go test answers its
// requests: {"token": …} when it asks for a token, {"stopped": true} after
// it stopped a session from the server side) and prints one JSON line per
// step on stdout: {"step", "t" (ms since start), …}.

import readline from "node:readline";

// The SDK's constructor builds a livekit-client Room, which needs these
// WebRTC globals; LITE mode never uses them.
class RTCPeerConnection {
  constructor() { throw new Error("RTCPeerConnection is a stub: LITE mode needs no WebRTC"); }
}
class RTCRtpSender {
  static getCapabilities() { return { codecs: [], headerExtensions: [] }; }
}
class MediaStream {
  constructor(tracks = []) { this.tracks = tracks; }
  getTracks() { return this.tracks; }
  addTrack(t) { this.tracks.push(t); }
  removeTrack() {}
}
Object.assign(globalThis, { RTCPeerConnection, RTCRtpSender, MediaStream });

const { LiveAvatarSession, SessionEvent, AgentEventsEnum, SessionState } = await import("@heygen/liveavatar-web-sdk");

const apiUrl = process.argv[2];
const t0 = Date.now();
const out = (step, fields = {}) => console.log(JSON.stringify({ step, t: Date.now() - t0, ...fields }));

process.on("unhandledRejection", (err) => out("unhandled rejection", { error: String(err && err.message || err) }));

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const ask = async (what) => {
  out("ask", { what });
  const { value, done } = await lines.next();
  if (done) throw new Error("stdin closed while waiting for " + what);
  return JSON.parse(value);
};

// pcm returns base64 of ms milliseconds of a 440 Hz tone, PCM s16le 24 kHz.
const pcm = (ms) => {
  const samples = Math.round(24000 * ms / 1000);
  const buf = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) buf.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * 440 * i / 24000)), i * 2);
  return buf.toString("base64");
};

const once = (session, event, ms = 10000) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("timed out waiting for " + event)), ms);
  session.once(event, (arg) => { clearTimeout(timer); resolve(arg); });
});

// watch logs the SDK's events and the socket's raw messages.
const watch = (name, session) => {
  session.on(SessionEvent.SESSION_STATE_CHANGED, (state) => out(`${name}: state`, { state }));
  session.on(SessionEvent.SESSION_DISCONNECTED, (reason) => out(`${name}: disconnected`, { reason }));
  session.on(AgentEventsEnum.AVATAR_SPEAK_STARTED, (e) => out(`${name}: avatar.speak_started`, { event_id: e.event_id }));
  session.on(AgentEventsEnum.AVATAR_SPEAK_ENDED, (e) => out(`${name}: avatar.speak_ended`, { event_id: e.event_id }));
};
const tap = (name, session) => {
  const ws = session._sessionEventSocket; // the SDK's LITE socket
  ws.addEventListener("message", (m) => out(`${name}: socket message`, { message: JSON.parse(m.data) }));
  ws.addEventListener("close", (c) => out(`${name}: socket closed`, { code: c.code, reason: c.reason }));
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// 1. A whole LITE session.
{
  const { token } = await ask("LITE token");
  const s = new LiveAvatarSession(token, { apiUrl });
  out("constructed", { mode: s.mode, agentType: s.agentType, state: s.state });
  watch("lite", s);
  await s.start();
  tap("lite", s);
  out("started", { state: s.state, sessionId: s.sessionId, maxSessionDuration: s.maxSessionDuration });

  const spoken = once(s, AgentEventsEnum.AVATAR_SPEAK_ENDED);
  const returned = s.repeatAudio(pcm(1400));
  out("repeatAudio", { returned_id: returned, ms: 1400 });
  await spoken;

  s.startListening();
  out("startListening");
  s.stopListening();
  out("stopListening");

  const started = once(s, AgentEventsEnum.AVATAR_SPEAK_STARTED);
  s.repeatAudio(pcm(5000));
  out("repeatAudio", { ms: 5000 });
  await started;
  s.interrupt();
  out("interrupt");
  await sleep(300);

  await s.keepAlive();
  out("keepAlive");
  await sleep(200);

  const gone = once(s, SessionEvent.SESSION_DISCONNECTED);
  await s.stop();
  await gone;
  await sleep(300); // the SDK's own POST /stop is not awaited
  out("stopped", { state: s.state });
}

// 2. A failed start: a FULL token (this server runs no LiveKit).
{
  const { token } = await ask("FULL token");
  const s = new LiveAvatarSession(token, { apiUrl });
  out("constructed", { mode: s.mode, state: s.state });
  watch("full", s);
  try {
    await s.start();
    out("start resolved", { state: s.state });
  } catch (e) {
    out("start failed", { name: e.constructor.name, message: e.message, errorCode: e.errorCode, status: e.status });
  }
  await sleep(300); // the SDK's POST /stop after a failed start
}

// 3. The server closes the session.
{
  const { token } = await ask("LITE token");
  const s = new LiveAvatarSession(token, { apiUrl });
  watch("server-close", s);
  await s.start();
  tap("server-close", s);
  out("started", { state: s.state, sessionId: s.sessionId });
  const gone = once(s, SessionEvent.SESSION_DISCONNECTED);
  await ask("server-side stop");
  await gone;
  await sleep(300);
  out("stopped", { state: s.state });
}
out("done");
process.exit(0);
