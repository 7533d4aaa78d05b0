// streamsession console.
//
// Drives one streaming session through the public Streaming API, exactly as an
// outside client would: streaming.new, streaming.start, the realtime socket
// named by realtime_endpoint, streaming.task, interrupt, keep_alive, stop.
// When the server offers media (HeyGen v1: streaming.new answers an sdp
// offer), Start answers it from a plain RTCPeerConnection, trickles the
// page's candidates with streaming.ice and plays the avatar; the session is
// then connected by its media, not by the socket.
// Nothing here is private to the console: each button is one documented call,
// and the Events card shows each request and answer.
//
// What the page believes about the session's state comes only from the
// server: API answers, session.state_updated events on the socket, the
// 10001-10005 errors (whose code names the state the session is in) and the
// account's session list. States only move forward, so a late answer never
// moves the diagram back.
//
// Every button that names the session is checked first by the guard
// (@streamsession/guard, served by the console as guard.js and generated from
// the server's own command policy): a click the session's state does not
// allow shows the server's exact error, marked as refused before any
// request, and sends nothing. The Events card logs it as a guard line.

import { check, SessionGuard, states } from "./guard.js";

const STATES = states;
const OPEN_STATES = new Set(["new", "connecting", "connected"]);
const POLL_MS = 2000;
const LOG_LIMIT = 300;
const FIRST_STATE_CODE = 10001; // 10001 + index(state): "Session state wrong: <state>"

// What each state means, and what it accepts, shown under the diagram.
const STATE_HELP = {
  new: "The session exists and holds a slot. It accepts <code>streaming.start</code> (and ice, stop); " +
    "a task now answers <code>10001</code>. Unstarted sessions close after the join timeout.",
  connecting: "Started: the server waits for the client. Without media, <strong>Open socket</strong> " +
    "moves it to connected; with media, the peer connection does once ICE and DTLS are up. " +
    "A task now answers <code>10002</code>.",
  connected: "The socket opened, or the media is up. It accepts task, interrupt, keep_alive, start/stop_listening and stop. " +
    "Without activity it closes after <code>activity_idle_timeout</code> seconds.",
  closing: "Shutting down: every call answers <code>10004</code> until it is closed.",
  closed: "Closed and its slot freed. Calls answer <code>10005</code> until the retention window ends, " +
    "then <code>10006</code>. Create a new session to go again.",
};

const app = {
  apiBase: "/v1",
  demoKeys: [],
  apiKey: "",
  // session: {id, auth: {header, value, label}, endpoint, ownerKey} for the
  // session this page created last; null before the first one.
  session: null,
  state: "",
  // guard tracks the session's state from the server's answers and events,
  // and checks each button's command against it before any request.
  guard: new SessionGuard(),
  visited: [],
  socket: null,
  socketClosedByUser: false,
  serverUp: null,
  pollTimer: 0,
  // peer is the RTCPeerConnection playing the current session's media; null
  // without media.
  peer: null,
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------
// Calling the API

// ApiError is a failed call: an error envelope from the server (status, code,
// message), an answer that is not the API's JSON, or no answer at all.
// A refusal of the guard is an ApiError with guard set: what the server would
// have answered, and no request sent.
class ApiError extends Error {
  constructor({ status = 0, code = null, message, network = false, guard = false }) {
    super(message);
    this.status = status;
    this.code = code;
    this.network = network;
    this.guard = guard;
  }
}

// api calls one endpoint and returns the answer's data. path is relative to
// the API base ("/streaming.new"); auth is {header, value} or null.
async function api(method, path, { body, auth, logIt = true } = {}) {
  const headers = {};
  if (auth) headers[auth.header] = auth.value;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const endpoint = path.replace(/^\//, "");
  let res, text;
  try {
    res = await fetch(app.apiBase + path, init);
    text = await res.text();
  } catch (e) {
    setServerUp(false);
    const err = new ApiError({ network: true, message: "The server cannot be reached." });
    if (logIt) logApi(method, endpoint, body, null, null, err);
    throw err;
  }
  setServerUp(true);
  let payload = null;
  try {
    payload = JSON.parse(text);
  } catch (e) {
    payload = null;
  }
  let err = null;
  if (payload === null || typeof payload !== "object") {
    err = new ApiError({ status: res.status, message: "Not an API answer: " + text.slice(0, 120) });
  } else if (!res.ok || (typeof payload.code === "number" && payload.code !== 100) || (payload.error != null)) {
    // The error envelope is flat: {"code", "message"}. create_token's success
    // envelope is {"error": null, "data": ...}: a non-null error is a failure.
    const code = typeof payload.code === "number" ? payload.code : null;
    const message = payload.message || (payload.error && (payload.error.message || String(payload.error))) || res.statusText;
    err = new ApiError({ status: res.status, code, message });
  }
  if (logIt) logApi(method, endpoint, body, res.status, payload, err);
  if (err) throw err;
  return payload.data === undefined ? null : payload.data;
}

function keyAuth() {
  return app.apiKey ? { header: "X-Api-Key", value: app.apiKey, label: "X-Api-Key" } : null;
}

// ---------------------------------------------------------------------------
// Buttons

// run performs one button's action: it marks the button busy, clears the
// button's error slot, and shows the error there if the action fails.
async function run(action, fn) {
  const button = document.querySelector(`[data-action="${action}"]`);
  if (button && button.getAttribute("aria-busy") === "true") return;
  if (button) button.setAttribute("aria-busy", "true");
  clearError(action);
  try {
    await fn();
  } catch (err) {
    showError(action, err);
  } finally {
    if (button) button.removeAttribute("aria-busy");
    refreshButtons();
  }
}

function showError(action, err) {
  const out = $("error-" + action);
  if (!out) return;
  out.replaceChildren();
  if (err instanceof ApiError && err.code !== null) {
    out.dataset.code = String(err.code);
    out.append(el("span", "code", String(err.code)), err.message);
    if (err.status) out.append(el("span", "status", "HTTP " + err.status));
    if (err.guard) {
      out.dataset.guard = "true";
      out.append(el("span", "guard", "refused by the guard · no request sent"));
    }
  } else {
    delete out.dataset.code;
    out.append(err && err.message ? err.message : String(err));
    if (err instanceof ApiError && err.status) out.append(el("span", "status", "HTTP " + err.status));
  }
}

function clearError(action) {
  const out = $("error-" + action);
  if (!out) return;
  out.replaceChildren();
  delete out.dataset.code;
  delete out.dataset.guard;
}

// guarded runs a button's action only if the guard says the server would
// accept command in the session's current state; otherwise it shows the
// server's answer next to the button and logs the refusal, without a request.
function guarded(action, command, fn) {
  return run(action, async () => {
    if (app.session) {
      const refusal = app.guard.check(command);
      if (refusal) {
        logGuard(command, app.guard.state, refusal);
        throw new ApiError({ ...refusal, guard: true });
      }
    }
    await fn();
  });
}

function logGuard(command, state, refusal) {
  logLine("guard", `${command} refused in ${state}: ${refusal.code} ${refusal.message} (no request sent)`,
    { event: "guard." + command, bad: true, data: { code: String(refusal.code) } });
}

// learnFromError moves the diagram when the server says which state the
// session is in: 10001-10005 name it.
function learnFromError(err) {
  if (!(err instanceof ApiError) || err.code === null) return;
  const i = err.code - FIRST_STATE_CODE;
  if (i >= 0 && i < STATES.length) setState(STATES[i], "error " + err.code);
}

const CONNECTED_COMMANDS = new Set(["streaming.task", "streaming.interrupt", "streaming.keep_alive"]);

// sessionCall is a call naming the current session with its own auth.
async function sessionCall(endpoint, extra = {}) {
  const s = app.session;
  if (!s) throw new Error("Create a session first.");
  try {
    const data = await api("POST", "/" + endpoint, { body: { session_id: s.id, ...extra }, auth: s.auth });
    // A success proves at least the state the command needs.
    if (app.session === s && CONNECTED_COMMANDS.has(endpoint)) setState("connected", endpoint);
    return data;
  } catch (err) {
    if (app.session === s) learnFromError(err);
    throw err;
  }
}

async function createSession() {
  const keyAuthValue = keyAuth();
  if (!keyAuthValue) throw new Error("Choose a demo account or paste an API key first.");
  let auth = keyAuthValue;
  if ($("use-token").checked) {
    const data = await api("POST", "/streaming.create_token", { body: {}, auth: keyAuthValue });
    if (!data || !data.token) throw new Error("streaming.create_token answered no token.");
    auth = { header: "Authorization", value: "Bearer " + data.token, label: "Bearer token" };
  }
  // Without a version the server answers an sdp offer when it serves media
  // (HeyGen v1); "v2" never makes a peer.
  const body = $("use-media").checked ? {} : { version: "v2" };
  const avatar = $("avatar").value;
  if (avatar) body.avatar_id = avatar;
  const data = await api("POST", "/streaming.new", { body, auth });
  if (!data || !data.session_id) throw new Error("streaming.new answered no session_id.");
  closeSocket();
  closePeer();
  app.session = {
    id: data.session_id,
    auth,
    endpoint: data.realtime_endpoint || data.url || "",
    ownerKey: keyAuthValue.value,
    offer: data.sdp && data.sdp.type === "offer" && typeof data.sdp.sdp === "string" ? data.sdp : null,
    iceServers: Array.isArray(data.ice_servers2) ? data.ice_servers2 : [],
  };
  app.state = "";
  app.guard = new SessionGuard();
  app.visited = [];
  for (const action of ["start", "connect", "task", "interrupt", "keep-alive", "stop"]) clearError(action);
  $("info-id").textContent = data.session_id;
  $("info-auth").textContent = auth.label;
  $("info-paid").textContent = String(data.is_paid);
  $("info-limit").textContent = data.session_duration_limit ? data.session_duration_limit + " s" : "none";
  setSocketStatus("none", "not open");
  setPeerStatus(app.session.offer ? "offered" : "none", app.session.offer ? "offer received" : "no media");
  setState("new", "streaming.new");
  pollSoon();
}

async function startSession() {
  const s = app.session;
  if (s && s.offer) {
    await startMedia(s);
    return;
  }
  await sessionCall("streaming.start");
  setState("connecting", "streaming.start");
}

async function sendTask() {
  const text = $("task-text").value.trim();
  if (!text) throw new Error("Type what the avatar should say.");
  await sessionCall("streaming.task", { text });
}

async function stopSession() {
  await sessionCall("streaming.stop");
  // streaming.stop answers once the session is closed and its slot free;
  // the server has closed its peer, so the page closes its own.
  setState("closed", "streaming.stop");
  pollSoon();
}

// ---------------------------------------------------------------------------
// Media: the avatar over WebRTC (HeyGen v1)

// startMedia answers the server's offer: a plain RTCPeerConnection with the
// session's ice_servers2 takes the offer, and its answer goes out with
// streaming.start. The page's candidates are held until the start is
// accepted, then trickled with streaming.ice. A refused start closes the
// peer and leaves the session as it was.
async function startMedia(s) {
  closePeer();
  const pc = new RTCPeerConnection({ iceServers: s.iceServers });
  app.peer = pc;
  const pending = [];
  let started = false;
  pc.addEventListener("icecandidate", (ev) => {
    if (!ev.candidate || !ev.candidate.candidate) return; // end of candidates: nothing to send
    const c = ev.candidate.toJSON();
    if (started) sendCandidate(s, pc, c);
    else pending.push(c);
  });
  pc.addEventListener("connectionstatechange", () => onPeerState(s, pc));
  pc.addEventListener("iceconnectionstatechange", () => onPeerState(s, pc));
  pc.addEventListener("track", (ev) => {
    if (app.peer !== pc || !ev.streams[0]) return;
    showStream(ev.streams[0]);
  });
  pc.addEventListener("datachannel", (ev) => {
    const channel = ev.channel;
    channel.binaryType = "arraybuffer";
    channel.addEventListener("message", (m) => {
      if (app.peer === pc) onMediaMessage(m.data);
    });
  });
  setPeerStatus("new", "new");
  try {
    await pc.setRemoteDescription(s.offer);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    const local = pc.localDescription;
    await sessionCall("streaming.start", { sdp: { type: local.type, sdp: local.sdp } });
  } catch (err) {
    if (app.peer === pc) closePeer();
    throw err;
  }
  started = true;
  if (app.session === s) setState("connecting", "streaming.start");
  logLine("media", "answer sent; the session is connected when the peer is (ICE + DTLS)", { event: "media.answered" });
  for (const c of pending.splice(0)) sendCandidate(s, pc, c);
}

// sendCandidate trickles one of the page's candidates. Once the session is
// past connecting the server has no use for it: it is not sent, and a
// 10003 answer (the media connected the session while the candidate was on
// its way) is expected, not a failure.
async function sendCandidate(s, pc, candidate) {
  if (app.peer !== pc || app.session !== s || app.guard.check("streaming.ice")) return;
  const body = { session_id: s.id, candidate };
  try {
    const data = await api("POST", "/streaming.ice", { body, auth: s.auth, logIt: false });
    logLine("api", "POST streaming.ice → 200", { event: "api.streaming.ice", detail: { request: body, response: data } });
  } catch (err) {
    if (app.session === s) learnFromError(err);
    const late = err instanceof ApiError && err.code === FIRST_STATE_CODE + 2;
    const text = late
      ? `POST streaming.ice → ${err.status} · ${err.code}: the media already connected the session, the candidate is not needed`
      : `POST streaming.ice → ${err.status || "no answer"} · ${err.code !== null ? err.code + " " : ""}${err.message}`;
    logLine("api", text, { event: "api.streaming.ice", detail: { request: body }, bad: !late });
  }
}

// onPeerState shows the peer's state beside the session's. The server
// connects the session when its own side of the peer is up: the page asks
// streaming.list at once, and often until the list says so.
function onPeerState(s, pc) {
  if (app.peer !== pc) return;
  let state = pc.connectionState;
  // Before the connection is up, say when ICE is checking its pairs.
  if ((state === "new" || state === "connecting") && pc.iceConnectionState === "checking") state = "checking";
  setPeerStatus(state, state);
  if ($("peer-status").dataset.logged !== state) {
    $("peer-status").dataset.logged = state;
    logLine("media", `peer ${state} (ICE ${pc.iceConnectionState})`,
      { event: "media.peer." + state, bad: state === "failed" });
  }
  if (app.session === s && (state === "connected" || state === "failed")) pollSoon();
}

function showStream(stream) {
  const video = $("avatar-video");
  if (video.srcObject === stream) return;
  video.srcObject = stream;
  video.hidden = false;
  $("media-empty").hidden = true;
  $("media-card").dataset.media = "playing";
  $("btn-mute").disabled = false;
  // Muted, the browser lets the page start the video without a click; the
  // Unmute button is the user's gesture that lets the sound play.
  video.muted = true;
  renderMute();
  video.play().catch((e) => logLine("media", "the video did not start: " + e.message, { event: "media.play", bad: true }));
  countFrames(video, stream);
  logLine("media", "playing " + stream.getTracks().map((t) => t.kind).sort().join(" + "), { event: "media.track" });
}

// countFrames counts the frames the browser presents, shown under the video.
function countFrames(video, stream) {
  let frames = 0;
  video.dataset.frames = "0";
  if (!("requestVideoFrameCallback" in video)) return;
  const tick = (_now, meta) => {
    if (video.srcObject !== stream) return;
    frames++;
    video.dataset.frames = String(frames);
    if (frames % 5 === 1) {
      $("media-stats").textContent = `${meta.width}×${meta.height} · ${frames} frames shown`;
    }
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
}

function toggleMute() {
  const video = $("avatar-video");
  video.muted = !video.muted;
  if (!video.muted) video.play().catch(() => {});
  renderMute();
}

function renderMute() {
  const video = $("avatar-video");
  const b = $("btn-mute");
  b.textContent = video.muted ? "Unmute" : "Mute";
  b.setAttribute("aria-pressed", String(video.muted));
}

// onMediaMessage reads the data channel's binary JSON talking events.
function onMediaMessage(data) {
  let msg;
  try {
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    msg = JSON.parse(text);
  } catch (e) {
    logLine("media", "data channel: not JSON", { event: "media.invalid", bad: true });
    return;
  }
  const type = msg && typeof msg.type === "string" ? msg.type : "(no type)";
  if (type === "avatar_start_talking") {
    $("talking").hidden = false;
    logLine("media", `avatar_start_talking · task ${short(msg.task_id)} (data channel)`, { event: type, detail: msg });
  } else if (type === "avatar_stop_talking") {
    $("talking").hidden = true;
    logLine("media", `avatar_stop_talking · task ${short(msg.task_id)} · ${msg.duration_ms} ms (data channel)`,
      { event: type, detail: msg, data: { interrupted: String(!!msg.interrupted) } });
  } else {
    logLine("media", "data channel: " + type, { event: "media." + type, detail: msg });
  }
}

// closePeer closes the page's peer and clears the video; the peer badge
// keeps its last state, marked closed.
function closePeer() {
  const pc = app.peer;
  app.peer = null;
  const video = $("avatar-video");
  video.pause();
  video.srcObject = null;
  video.hidden = true;
  $("media-empty").hidden = false;
  $("media-card").dataset.media = "none";
  $("media-stats").textContent = "";
  $("btn-mute").disabled = true;
  if (!pc) return;
  pc.close();
  setPeerStatus("closed", "closed");
  logLine("media", "peer closed", { event: "media.peer.closed" });
}

function setPeerStatus(status, label) {
  const badge = $("peer-status");
  badge.dataset.status = status;
  badge.textContent = status === "none" ? label : "peer: " + label;
}

// ---------------------------------------------------------------------------
// The realtime socket

function openSocket() {
  const s = app.session;
  if (!s) throw new Error("Create a session first.");
  if (!s.endpoint) throw new Error("streaming.new answered no realtime_endpoint.");
  closeSocket();
  clearError("connect");
  let ws;
  try {
    ws = new WebSocket(s.endpoint);
  } catch (e) {
    throw new Error("Cannot open " + s.endpoint + ": " + e.message);
  }
  app.socket = ws;
  app.socketClosedByUser = false;
  let opened = false;
  setSocketStatus("opening", "opening…");
  logLine("socket", "opening the realtime socket", { event: "socket.opening" });

  ws.addEventListener("open", () => {
    if (app.socket !== ws) return;
    opened = true;
    setSocketStatus("open", "open");
    logLine("socket", "socket open", { event: "socket.open" });
  });
  ws.addEventListener("message", (ev) => {
    if (app.socket !== ws) return;
    onSocketMessage(ev.data);
  });
  ws.addEventListener("close", (ev) => {
    if (app.socket !== ws) return;
    app.socket = null;
    $("talking").hidden = true;
    if (app.session !== s) return;
    if (!opened) {
      setSocketStatus("failed", "refused");
      showError("connect", new Error(
        `The socket did not open (close code ${ev.code}). The server refuses it when the session is ` +
        "neither connecting nor connected, or when the server is gone."));
      logLine("socket", `socket refused (close code ${ev.code})`, { event: "socket.refused", bad: true });
      pollSoon();
    } else if (app.state === "closed" || app.state === "closing") {
      setSocketStatus("closed", "closed by the server");
      logLine("socket", `socket closed by the server: the session is ${app.state} (code ${ev.code})`, { event: "socket.closed" });
    } else if (app.socketClosedByUser) {
      setSocketStatus("dropped", "dropped by you");
      logLine("socket", "socket dropped by you: the session stays connected while its idle timer runs; reconnect with the same token",
        { event: "socket.dropped" });
    } else {
      setSocketStatus("dropped", `dropped (code ${ev.code})`);
      logLine("socket", `socket dropped (close code ${ev.code}${ev.reason ? ", " + ev.reason : ""})`,
        { event: "socket.dropped", bad: true });
      pollSoon();
    }
    refreshButtons();
  });
}

function closeSocket() {
  const ws = app.socket;
  app.socket = null;
  if (ws) ws.close(1000, "replaced");
}

function dropSocket() {
  if (!app.socket) return;
  app.socketClosedByUser = true;
  app.socket.close(4000, "dropped by the console");
}

function onSocketMessage(data) {
  let msg;
  try {
    msg = JSON.parse(data);
  } catch (e) {
    logLine("socket", "not JSON: " + String(data).slice(0, 120), { event: "socket.invalid", bad: true });
    return;
  }
  const type = msg && typeof msg.type === "string" ? msg.type : "(no type)";
  switch (type) {
    case "session.state_updated":
      logLine("socket", `session.state_updated → ${msg.state}`, { event: type, detail: msg });
      setState(String(msg.state || "").toLowerCase(), "socket");
      break;
    case "avatar_start_talking":
      $("talking").hidden = false;
      logLine("socket", `avatar_start_talking · task ${short(msg.task_id)} · ${msg.duration_ms} ms`, { event: type, detail: msg });
      break;
    case "avatar_stop_talking":
      $("talking").hidden = true;
      logLine("socket", `avatar_stop_talking · task ${short(msg.task_id)} · ${msg.duration_ms} ms` +
        (msg.interrupted ? " · interrupted" : ""), { event: type, detail: msg, data: { interrupted: String(!!msg.interrupted) } });
      break;
    case "error":
      logLine("socket", `error ${msg.code}: ${msg.message}`, { event: type, detail: msg, bad: true });
      break;
    case "closed":
      logLine("socket", "closed", { event: type, detail: msg });
      setState("closed", "socket");
      break;
    default:
      logLine("socket", type, { event: type, detail: msg });
  }
}

function setSocketStatus(status, label) {
  const badge = $("socket-status");
  badge.dataset.status = status;
  badge.textContent = label;
  refreshButtons();
}

// ---------------------------------------------------------------------------
// State and diagram

// setState records a state the server reported. States only move forward:
// a state earlier than the current one is a late answer and is ignored.
function setState(state, source) {
  const prev = app.state;
  const moved = app.guard.observe(state);
  if (!moved && app.guard.state !== state) return;
  if (moved) {
    app.visited.push(state);
    if (source !== "socket" && prev) {
      logLine("console", `state ${prev} → ${state} (from ${source})`, { event: "console.state" });
    }
  }
  app.state = app.guard.state;
  if (state === "closed") {
    $("talking").hidden = true;
    closePeer();
    // Once the session is closed, a socket that dropped has nothing to reconnect to.
    const socketStatus = $("socket-status").dataset.status;
    if (socketStatus === "dropped" || socketStatus === "failed") setSocketStatus("closed", "closed: the session ended");
  }
  renderState();
}

function renderState() {
  const state = app.state;
  for (const node of document.querySelectorAll("#diagram .node")) {
    const s = node.dataset.state;
    node.classList.toggle("active", s === state);
    node.classList.toggle("visited", s !== state && app.visited.includes(s));
  }
  const taken = new Set();
  for (let i = 1; i < app.visited.length; i++) taken.add(app.visited[i - 1] + "-" + app.visited[i]);
  for (const edge of document.querySelectorAll("#diagram .edge")) {
    edge.classList.toggle("taken", taken.has(edge.dataset.edge));
  }
  $("diagram").dataset.current = state;
  $("session-info").dataset.state = state;
  const badge = $("info-state");
  badge.dataset.state = state;
  badge.textContent = state || "—";
  if (state) $("state-help").innerHTML = `<strong>${state}</strong>: ${STATE_HELP[state]}`;
  refreshButtons();
}

function refreshButtons() {
  const s = app.session;
  for (const b of document.querySelectorAll("[data-needs-session]")) b.disabled = !s;
  // Mark the buttons the guard would refuse now (they stay clickable: a
  // click shows the refusal).
  for (const b of document.querySelectorAll("[data-command]")) {
    const refusal = s ? app.guard.check(b.dataset.command) : null;
    if (refusal) {
      b.dataset.refused = String(refusal.code);
      b.title = `The guard refuses ${b.dataset.command} in ${app.guard.state}: ${refusal.code} ${refusal.message}`;
    } else {
      delete b.dataset.refused;
      b.removeAttribute("title");
    }
  }
  const live = s && !["closed", "closing"].includes(app.state);
  const socketStatus = $("socket-status").dataset.status;
  $("btn-reconnect").hidden = !(live && (socketStatus === "dropped" || socketStatus === "failed"));
  $("btn-disconnect").hidden = !(live && socketStatus === "open");
}

// ---------------------------------------------------------------------------
// The account's sessions (and whether the server is there)

function pollSoon() {
  clearTimeout(app.pollTimer);
  app.pollTimer = setTimeout(poll, 50);
}

async function poll() {
  clearTimeout(app.pollTimer);
  try {
    const auth = keyAuth();
    if (auth) {
      await refreshSessions(auth);
    } else {
      renderSessions([]);
      await probeServer();
    }
  } finally {
    // While the peer is up and the list still says connecting, ask often:
    // the server joins the session when its side of the peer is up.
    const soon = app.peer && app.peer.connectionState === "connected" && app.state === "connecting";
    app.pollTimer = setTimeout(poll, soon ? 200 : POLL_MS);
  }
}

async function probeServer() {
  try {
    await fetch("config.json", { cache: "no-store" });
    setServerUp(true);
  } catch (e) {
    setServerUp(false);
  }
}

async function refreshSessions(auth) {
  const s = app.session;
  let data;
  try {
    data = await api("GET", "/streaming.list", { auth, logIt: false });
  } catch (err) {
    if (!err.network) showError("list", err);
    return;
  }
  clearError("list");
  const sessions = data && Array.isArray(data.sessions) ? data.sessions : [];
  renderSessions(sessions);
  // The list is the truth about open sessions: if ours is missing, a timer
  // (join, idle, duration) or a restart closed it.
  if (s && app.session === s && s.ownerKey === auth.value) {
    const row = sessions.find((x) => x.session_id === s.id);
    if (row) {
      setState(String(row.status || "").toLowerCase(), "streaming.list");
    } else if (OPEN_STATES.has(app.state)) {
      setState("closed", "streaming.list: no longer open");
    }
  }
}

function renderSessions(sessions) {
  const tbody = document.querySelector("#sessions tbody");
  const rows = sessions.map((x) => {
    const tr = document.createElement("tr");
    tr.dataset.sessionId = x.session_id;
    tr.dataset.status = x.status;
    if (app.session && app.session.id === x.session_id) tr.classList.add("current");
    const id = el("td", "id", short(x.session_id, 16));
    id.title = x.session_id;
    const status = el("td", "", "");
    const badge = el("span", "badge", x.status);
    badge.dataset.state = String(x.status || "").toLowerCase();
    status.append(badge);
    const created = el("td", "", age(x.created_at));
    const cell = el("td", "actions-cell", "");
    const stop = el("button", "small danger row-stop", "Stop");
    stop.dataset.sessionId = x.session_id;
    stop.title = "POST streaming.stop with the account's key";
    cell.append(stop);
    tr.append(id, status, created, cell);
    return tr;
  });
  tbody.replaceChildren(...rows);
  $("sessions-empty").hidden = rows.length > 0;
}

async function stopListed(id, status) {
  const auth = keyAuth();
  clearError("list");
  // The list names each session's state: the guard checks the stop first.
  const known = STATES.includes(status);
  const refusal = known ? check(status, "streaming.stop") : null;
  if (refusal) {
    logGuard("streaming.stop", status, refusal);
    showError("list", new ApiError({ ...refusal, guard: true }));
    return;
  }
  try {
    await api("POST", "/streaming.stop", { body: { session_id: id }, auth });
    if (app.session && app.session.id === id) setState("closed", "streaming.stop");
  } catch (err) {
    showError("list", err);
  }
  pollSoon();
}

function setServerUp(up) {
  if (app.serverUp === up) return;
  const was = app.serverUp;
  app.serverUp = up;
  const box = $("server-status");
  box.dataset.status = up ? "up" : "down";
  box.querySelector(".label").textContent = up ? "server online" : "server unreachable";
  $("server-down").hidden = up;
  if (!up) logLine("console", "the server is not answering", { event: "server.down", bad: true });
  else if (was === false) logLine("console", "the server answers again", { event: "server.up" });
}

// ---------------------------------------------------------------------------
// Account picker and avatars

function chooseAccount() {
  const v = $("account").value;
  const paste = v === "paste";
  $("api-key").hidden = !paste;
  app.apiKey = paste ? $("api-key").value.trim() : v;
  clearError("account");
  clearError("list");
  loadAvatars();
  pollSoon();
}

async function loadAvatars() {
  const select = $("avatar");
  const keep = select.value;
  const first = select.options[0];
  select.replaceChildren(first);
  const auth = keyAuth();
  if (!auth) return;
  try {
    const data = await api("GET", "/streaming/avatar.list", { auth, logIt: false });
    for (const a of Array.isArray(data) ? data : []) {
      const opt = document.createElement("option");
      opt.value = a.avatar_id;
      opt.textContent = a.avatar_id + (a.is_public ? "" : " (private)") + (a.status && a.status !== "ACTIVE" ? " · " + a.status : "");
      select.append(opt);
    }
    select.value = [...select.options].some((o) => o.value === keep) ? keep : "";
  } catch (err) {
    if (!err.network) showError("account", err);
  }
}

// ---------------------------------------------------------------------------
// The event log

function logLine(kind, text, { event = "", detail = null, bad = false, data = {} } = {}) {
  const li = document.createElement("li");
  li.dataset.kind = kind;
  if (event) li.dataset.event = event;
  Object.assign(li.dataset, data);
  if (bad) li.classList.add("bad");
  const body = el("span", "text", "");
  if (detail !== null) {
    const d = document.createElement("details");
    d.append(el("summary", "", text), el("pre", "", JSON.stringify(detail, null, 2)));
    body.append(d);
  } else {
    body.textContent = text;
  }
  li.append(el("span", "time", clock()), el("span", "kind", kind), body);
  const log = $("log");
  log.prepend(li);
  while (log.children.length > LOG_LIMIT) log.lastElementChild.remove();
}

function logApi(method, endpoint, request, status, response, err) {
  let text = `${method} ${endpoint} → `;
  if (status === null) text += "no answer";
  else if (err && err.code !== null) text += `${status} · ${err.code} ${err.message}`;
  else if (err) text += `${status} · ${err.message}`;
  else text += `${status}`;
  const detail = {};
  if (request !== undefined) detail.request = request;
  if (response !== null) detail.response = response;
  logLine("api", text, { event: "api." + endpoint, detail, bad: !!err });
}

// ---------------------------------------------------------------------------
// Small helpers

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text) e.textContent = text;
  return e;
}

function short(id, n = 10) {
  const s = String(id === undefined || id === null ? "" : id);
  return s.length > n ? s.slice(0, n) + "…" : s;
}

function clock() {
  return new Date().toLocaleTimeString([], { hour12: false });
}

// age formats created_at, which may be Unix seconds, milliseconds or a date string.
function age(createdAt) {
  let t;
  if (typeof createdAt === "number") t = createdAt > 1e12 ? createdAt : createdAt * 1000;
  else t = Date.parse(createdAt);
  if (!Number.isFinite(t)) return String(createdAt ?? "");
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h ago";
}

// ---------------------------------------------------------------------------
// Start

async function loadConfig() {
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    const cfg = await res.json();
    if (typeof cfg.api_base === "string") app.apiBase = cfg.api_base;
    if (Array.isArray(cfg.demo_keys)) app.demoKeys = cfg.demo_keys;
  } catch (e) {
    setServerUp(false);
  }
  $("server-down-base").textContent = new URL(app.apiBase, location.href).href;
  const select = $("account");
  for (const k of app.demoKeys) {
    const opt = document.createElement("option");
    opt.value = k.api_key;
    opt.textContent = `${k.name} (${k.api_key})`;
    select.append(opt);
  }
  const paste = document.createElement("option");
  paste.value = "paste";
  paste.textContent = "Paste a key…";
  select.append(paste);
}

function wire() {
  $("account").addEventListener("change", chooseAccount);
  $("api-key").addEventListener("change", chooseAccount);
  $("api-key").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") chooseAccount();
  });
  $("btn-new").addEventListener("click", () => run("new", createSession));
  $("btn-start").addEventListener("click", () => guarded("start", "streaming.start", startSession));
  $("btn-connect").addEventListener("click", () => guarded("connect", "ws/streaming.chat", async () => openSocket()));
  $("btn-reconnect").addEventListener("click", () => guarded("connect", "ws/streaming.chat", async () => openSocket()));
  $("btn-disconnect").addEventListener("click", () => dropSocket());
  $("btn-task").addEventListener("click", () => guarded("task", "streaming.task", sendTask));
  $("task-text").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") guarded("task", "streaming.task", sendTask);
  });
  $("btn-interrupt").addEventListener("click", () => guarded("interrupt", "streaming.interrupt", () => sessionCall("streaming.interrupt")));
  $("btn-keep-alive").addEventListener("click", () => guarded("keep-alive", "streaming.keep_alive", () => sessionCall("streaming.keep_alive")));
  $("btn-stop").addEventListener("click", () => guarded("stop", "streaming.stop", stopSession));
  $("btn-mute").addEventListener("click", toggleMute);
  $("btn-clear-log").addEventListener("click", () => $("log").replaceChildren());
  document.querySelector("#sessions tbody").addEventListener("click", (ev) => {
    const b = ev.target.closest("button.row-stop");
    if (b) stopListed(b.dataset.sessionId, String(b.closest("tr").dataset.status || "").toLowerCase());
  });
}

async function main() {
  wire();
  await loadConfig();
  chooseAccount();
  renderState();
  document.body.dataset.ready = "true";
}

main();
