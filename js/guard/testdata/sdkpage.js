// The page of js/guard's Chromium test (sdk_browser_test.go), bundled with
// esbuild together with HeyGen's SDK 2.1.0 (pinned in package.json): it drives
// a guarded StreamingAvatar against the test server and resolves with one
// entry per step, for the Go test to check. Tokens are never returned.
import StreamingAvatar from '@heygen/streaming-avatar';
import { guardAvatar, guardOf } from '../heygen.js';

window.runGuardedSDK = async (base, token) => {
  const steps = [];
  const avatar = guardAvatar(new StreamingAvatar({ token, basePath: base }));
  async function step(name, fn) {
    try {
      const value = await fn();
      steps.push({ step: name, ok: true, state: guardOf(avatar).state });
      return value;
    } catch (e) {
      steps.push({
        step: name,
        ok: false,
        state: guardOf(avatar).state,
        error: { name: e?.name, code: e?.code ?? null, status: e?.status ?? null, responseText: e?.responseText ?? null },
      });
      return undefined;
    }
  }

  await step('speak before newSession', () => avatar.speak({ text: 'no session yet' }));
  const info = await step('newSession', () => avatar.newSession({ avatarName: 'Wayne_20240711', quality: 'low' }));
  if (!info) return steps;
  // What startAvatar sets before it joins the LiveKit room (which this
  // server does not serve); the calls below are the SDK's own.
  avatar.sessionId = info.session_id;
  await step('speak in new', () => avatar.speak({ text: 'too early' }));
  await step('startSession', () => avatar.startSession());
  await step('speak in connecting', () => avatar.speak({ text: 'still too early' }));
  await step('interrupt in connecting', () => avatar.interrupt());

  // The SDK dials wss://<basePath's hostname>/v1/ws/... on port 443: this
  // stand-in keeps the path and query it built and dials the test server.
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      const u = new URL(url);
      const target = new URL(base);
      target.protocol = 'ws:';
      target.pathname = u.pathname;
      target.search = u.search;
      super(target.href, protocols);
    }
  };
  const connected = new Promise((resolve) => {
    avatar.on('session.state_updated', (ev) => {
      if (ev.detail?.state === 'connected') resolve();
    });
  });
  await step('connectWebSocket', () => avatar.connectWebSocket({ useSilencePrompt: false }));
  await step('session.state_updated connected', () => connected);
  await step('speak', () => avatar.speak({ text: 'Hello', taskType: 'repeat', taskMode: 'sync' }));
  await step('interrupt', () => avatar.interrupt());
  await step('stopAvatar', () => avatar.stopAvatar());
  await step('stopAvatar twice', () => avatar.stopAvatar());
  await step('speak after stop', () => avatar.speak({ text: 'too late' }));
  window.WebSocket = Native;
  return steps;
};
