// @streamsession/guard/heygen: the guard around HeyGen's Streaming Avatar SDK
// 2.x (@heygen/streaming-avatar). Optional: import it only if you use the SDK.
//
//   import StreamingAvatar from '@heygen/streaming-avatar';
//   import { guardAvatar, guardOf } from '@streamsession/guard/heygen';
//   const avatar = guardAvatar(new StreamingAvatar({ token, basePath }));
//   await avatar.speak({ text: 'hi' }); // before connected: rejects, no request
//
// guardAvatar wraps the methods of one StreamingAvatar instance in place. Each
// call that names the session is checked against the session's state first:
// in a state the server would refuse, it rejects with a GuardedAPIError
// carrying the server's exact answer (status, and the body as responseText,
// as the SDK's own APIError does) and sends nothing. The state is learnt from
// the SDK's answers (newSession, startSession, a refusal's 10001-10005), from
// the realtime socket's session.state_updated events and from STREAM_READY.
// The SDK's internal calls (createStartAvatar calls newSession and
// startSession) go through the same wrappers.

import { RefusedError, SessionGuard } from './index.js';

/**
 * GuardedAPIError is a call refused by the guard: a RefusedError that also
 * looks like the SDK's APIError (status, and responseText, the body the
 * server would have sent).
 */
export class GuardedAPIError extends RefusedError {
  constructor(refusal, command) {
    super(refusal, command);
    this.name = 'GuardedAPIError';
    this.responseText = JSON.stringify({ code: refusal.code, message: refusal.message });
  }
}

// The SDK's methods that name the session, and the command each one sends.
const guardedMethods = {
  startSession: 'streaming.start',
  speak: 'streaming.task',
  interrupt: 'streaming.interrupt',
  keepAlive: 'streaming.keep_alive',
  startListening: 'streaming.start_listening',
  stopListening: 'streaming.stop_listening',
  stopAvatar: 'streaming.stop',
  connectWebSocket: 'ws/streaming.chat',
};

const holders = new WeakMap();

// learnFromError observes the state an SDK APIError names: its responseText
// is the server's JSON body.
function learnFromError(guard, err) {
  if (err === null || typeof err !== 'object') return;
  if (err instanceof RefusedError) return;
  let body = null;
  if (typeof err.responseText === 'string') {
    try {
      body = JSON.parse(err.responseText);
    } catch {
      body = null;
    }
  }
  guard.observeError(body ?? err);
}

/**
 * guardAvatar wraps avatar (a StreamingAvatar of the SDK 2.x) in place and
 * returns it. options.guard is the SessionGuard to use (a new one by
 * default; pass one that knows the state when the session already exists).
 * A successful newSession starts a fresh guard for the new session. Wrapping
 * the same avatar twice returns it unchanged.
 */
export function guardAvatar(avatar, options = {}) {
  if (avatar === null || typeof avatar !== 'object' || typeof avatar.speak !== 'function') {
    throw new TypeError('@streamsession/guard/heygen: guardAvatar needs a StreamingAvatar');
  }
  if (holders.has(avatar)) return avatar;
  const holder = { guard: options.guard ?? new SessionGuard() };
  holders.set(avatar, holder);

  const newSession = avatar.newSession;
  avatar.newSession = async function (...args) {
    const info = await newSession.apply(this, args);
    holder.guard = new SessionGuard('new');
    return info;
  };

  for (const [method, command] of Object.entries(guardedMethods)) {
    const original = avatar[method];
    if (typeof original !== 'function') continue;
    avatar[method] = async function (...args) {
      const guard = holder.guard;
      const refusal = guard.check(command);
      if (refusal !== null) throw new GuardedAPIError(refusal, command);
      let result;
      try {
        result = await original.apply(this, args);
      } catch (err) {
        learnFromError(guard, err);
        throw err;
      }
      guard.observeAnswer(command);
      return result;
    };
  }

  avatar.on('session.state_updated', (ev) => holder.guard.observeEvent(ev?.detail));
  // The SDK emits stream_ready once the avatar's media flows: the session is
  // connected by then.
  avatar.on('stream_ready', () => holder.guard.observe('connected'));
  return avatar;
}

/**
 * guardOf returns the SessionGuard of an avatar wrapped by guardAvatar (the
 * current session's), or undefined for another value.
 */
export function guardOf(avatar) {
  return holders.get(avatar)?.guard;
}
