// Drives HeyGen's Streaming Avatar SDK (@heygen/streaming-avatar, pinned in
// package.json) against a streamsession server, in Node, and prints one JSON
// line per step on stdout for the Go test (sdk_test.go) to check:
//
//   {"step": "<name>", "ok": true, "data": <what the SDK method returned>}
//   {"step": "<name>", "ok": false, "error": {"name", "message", "status", "responseText"}}
//
// Usage: SDKTEST_BASE=http://127.0.0.1:PORT SDKTEST_TOKEN=<bearer token> node sdk.mjs rest|socket
//
// rest:   the SDK's REST-level methods in the order an app calls them;
//         the session is joined through the server's own socket
//         (realtime_endpoint, authorised by access_token).
// socket: the SDK's own realtime socket (connectWebSocket, what startAvatar
//         calls after joining the LiveKit room), with the bearer token as
//         session_token, and the events the SDK dispatches by event_type.
//
// Tokens never reach stdout. The script exits 0 once every step ran (a
// refused step is a result, checked by the Go test) and 2 when it cannot run.

// The package's "main" is a CommonJS file inside a "type": "module" package,
// which Node refuses to load; its ES module build loads fine.
import StreamingAvatar, {
  AvatarQuality,
  ElevenLabsModel,
  STTProvider,
  StreamingEvents,
  TaskMode,
  TaskType,
  VoiceChatTransport,
  VoiceEmotion,
} from '@heygen/streaming-avatar/lib/index.esm.js';

const base = process.env.SDKTEST_BASE;
const token = process.env.SDKTEST_TOKEN;
const mode = process.argv[2];
const waitMS = 5000; // upper bound for an awaited event; events normally arrive in milliseconds

if (!base || !token || !['rest', 'socket'].includes(mode)) {
  console.error('usage: SDKTEST_BASE=... SDKTEST_TOKEN=... node sdk.mjs rest|socket');
  process.exit(2);
}
if (typeof WebSocket !== 'function') {
  console.error('no global WebSocket: run node >= 22, or node 20 with --experimental-websocket');
  process.exit(2);
}

function emit(line) {
  process.stdout.write(JSON.stringify(line) + '\n');
}

// redact hides the tokens a value may carry (access_token, session_token in
// URLs), keeping the shape the Go test checks.
function redact(v) {
  return JSON.parse(JSON.stringify(v ?? null, (k, x) => {
    if (k === 'access_token') return x ? '<redacted>' : x;
    if (typeof x === 'string') return x.replace(/session_token=[^&]*/g, 'session_token=<redacted>');
    return x;
  }));
}

async function step(name, fn) {
  try {
    const data = await fn();
    emit({ step: name, ok: true, data: redact(data) });
    return data;
  } catch (e) {
    emit({
      step: name,
      ok: false,
      error: {
        name: e?.name ?? e?.constructor?.name ?? String(e),
        message: e?.message ?? String(e),
        status: e?.status,
        responseText: e?.responseText,
      },
    });
    return undefined;
  }
}

// waitFor resolves with the first value pushed to box that satisfies pred,
// or rejects after waitMS.
function waitFor(box, pred, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${waitMS} ms`)), waitMS);
    const check = () => {
      const hit = box.items.find(pred);
      if (hit !== undefined) {
        clearTimeout(timer);
        box.waiters.delete(check);
        resolve(hit);
        return true;
      }
      return false;
    };
    if (!check()) box.waiters.add(check);
  });
}

function newBox() {
  const box = { items: [], waiters: new Set() };
  box.push = (v) => {
    box.items.push(v);
    for (const w of [...box.waiters]) w();
  };
  return box;
}

// The body an app built on the SDK sends: every field newSession maps.
const startRequest = {
  avatarName: 'Wayne_20240711',
  quality: AvatarQuality.Low,
  knowledgeBase: 'You are a helpful assistant.',
  knowledgeId: '',
  voice: {
    voiceId: 'demo-voice',
    rate: 1.0,
    emotion: VoiceEmotion.FRIENDLY,
    model: ElevenLabsModel.eleven_flash_v2_5,
    elevenlabsSettings: { stability: 0.5, similarity_boost: 0.75 },
  },
  language: 'en',
  disableIdleTimeout: false,
  activityIdleTimeout: 120,
  sttSettings: { provider: STTProvider.DEEPGRAM, confidence: 0.55 },
  voiceChatTransport: VoiceChatTransport.WEBSOCKET,
  useSilencePrompt: false,
};

const avatar = new StreamingAvatar({ token, basePath: base });

async function rest() {
  const info = await step('newSession', () => avatar.newSession(startRequest));
  if (!info) return;
  // startAvatar sets this first, then joins the LiveKit room of url /
  // access_token, which this server does not serve: the REST-level methods
  // below are what an app calls once it has a session.
  avatar.sessionId = info.session_id;

  await step('speak in new', () => avatar.speak({ text: 'too early' }));
  await step('startSession', () => avatar.startSession());
  await step('startSession twice', () => avatar.startSession());

  // Join: the server's own socket, as realtime_endpoint gives it.
  const events = newBox();
  const ws = new WebSocket(info.realtime_endpoint);
  ws.addEventListener('message', (e) => events.push(JSON.parse(e.data)));
  await step('join (realtime_endpoint)', () =>
    waitFor(events, (m) => m.type === 'session.state_updated' && m.state === 'connected', 'connected event'));

  await step('speak', () => avatar.speak({ text: 'Hello there' }));
  await step('speak repeat sync', () =>
    avatar.speak({ text: 'Hello again', taskType: TaskType.REPEAT, taskMode: TaskMode.SYNC }));
  await step('interrupt', () => avatar.interrupt());
  await step('keepAlive', () => avatar.keepAlive());
  await step('startListening', () => avatar.startListening());
  await step('stopListening', () => avatar.stopListening());
  await step('stopAvatar', () => avatar.stopAvatar());
  await step('stopAvatar twice', () => avatar.stopAvatar());
  await step('keepAlive after stop', () => avatar.keepAlive());
  ws.close();
}

async function socket() {
  const info = await step('newSession', () => avatar.newSession({ ...startRequest, voiceChatTransport: VoiceChatTransport.LIVEKIT }));
  if (!info) return;
  // What startAvatar sets before it joins the room and opens the socket.
  avatar.sessionId = info.session_id;
  avatar.isLiveKitTransport = true;
  await step('startSession', () => avatar.startSession());

  // The SDK dials wss://<basePath's hostname>/v1/ws/... (port 443 whatever
  // basePath says). The stand-in below keeps the path and query the SDK
  // built and dials the test server's scheme and port instead.
  const NativeWebSocket = globalThis.WebSocket;
  const raw = newBox();
  let dialed = null;
  globalThis.WebSocket = class extends NativeWebSocket {
    constructor(url, protocols) {
      const u = new URL(url);
      dialed = u;
      const target = new URL(base);
      target.protocol = target.protocol === 'https:' ? 'wss:' : 'ws:';
      target.pathname = u.pathname;
      target.search = u.search;
      super(target.href, protocols);
      this.addEventListener('message', (e) => raw.push(JSON.parse(e.data)));
    }
  };

  // What the SDK dispatches: its listeners are keyed by each event's event_type.
  const heard = newBox();
  for (const type of ['session.state_updated', StreamingEvents.AVATAR_START_TALKING, StreamingEvents.AVATAR_STOP_TALKING]) {
    avatar.on(type, (e) => heard.push({ type, detail: e.detail }));
  }

  const opened = await step('connectWebSocket', async () => {
    await avatar.connectWebSocket({ useSilencePrompt: false });
    return true;
  });
  if (dialed) {
    const q = dialed.searchParams;
    emit({
      step: 'socket URL',
      ok: true,
      data: {
        scheme: dialed.protocol,
        path: dialed.pathname,
        params: [...q.keys()],
        session_id_is_the_session: q.get('session_id') === info.session_id,
        session_token_is_the_bearer_token: q.get('session_token') === token,
        arch_version: q.get('arch_version'),
        silence_response: q.get('silence_response'),
        push_to_talk: q.get('push_to_talk'),
      },
    });
  }
  if (!opened) return;

  await step('event session.state_updated connected', () =>
    waitFor(heard, (h) => h.type === 'session.state_updated' && h.detail.state === 'connected', 'connected event'));
  const task = await step('speak', () => avatar.speak({ text: 'Hello through the socket' }));
  if (task) {
    await step('event avatar_start_talking', () =>
      waitFor(heard, (h) => h.type === StreamingEvents.AVATAR_START_TALKING && h.detail.task_id === task.task_id, 'avatar_start_talking'));
    await step('interrupt', () => avatar.interrupt());
    await step('event avatar_stop_talking', () =>
      waitFor(heard, (h) => h.type === StreamingEvents.AVATAR_STOP_TALKING && h.detail.task_id === task.task_id, 'avatar_stop_talking'));
  }
  emit({
    step: 'raw events',
    ok: true,
    data: raw.items.map((m) => ({ type: m.type, event_type: m.event_type })),
  });
  await step('stopAvatar', () => avatar.stopAvatar());
}

try {
  await (mode === 'rest' ? rest() : socket());
} catch (e) {
  console.error('sdk.mjs:', e);
  process.exit(2);
}
process.exit(0);
