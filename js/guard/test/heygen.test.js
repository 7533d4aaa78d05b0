// node --test js/guard/test/: the SDK wrapper against a stand-in shaped like
// StreamingAvatar 2.x (the real SDK runs in Chromium: js/guard's Go tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { RefusedError } from '../index.js';
import { GuardedAPIError, guardAvatar, guardOf } from '../heygen.js';

// FakeAvatar records the requests it would send; fail makes the next one
// answer like the SDK's APIError with the server's body.
class FakeAvatar {
  constructor() {
    this.events = new EventTarget();
    this.sent = [];
    this.fail = null;
  }
  on(type, fn) {
    this.events.addEventListener(type, fn);
    return this;
  }
  emit(type, detail) {
    this.events.dispatchEvent(new CustomEvent(type, { detail }));
  }
  async request(path) {
    this.sent.push(path);
    if (this.fail) {
      const body = this.fail;
      this.fail = null;
      const e = new Error('API request failed with status 400');
      e.status = 400;
      e.responseText = JSON.stringify(body);
      throw e;
    }
    return path === 'streaming.new' ? { session_id: 's1' } : null;
  }
  newSession() { return this.request('streaming.new'); }
  startSession() { return this.request('streaming.start'); }
  speak() { return this.request('streaming.task'); }
  interrupt() { return this.request('streaming.interrupt'); }
  keepAlive() { return this.request('streaming.keep_alive'); }
  stopAvatar() { return this.request('streaming.stop'); }
  // createStartAvatar calls the instance's own methods, as the SDK does.
  async createStartAvatar() {
    const info = await this.newSession();
    await this.startSession();
    return info;
  }
}

async function refused(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof GuardedAPIError);
    assert.ok(e instanceof RefusedError);
    assert.equal(e.code, code);
    assert.equal(e.status, code === 10006 ? 404 : 400);
    assert.deepEqual(JSON.parse(e.responseText), { code: e.code, message: e.message });
    return true;
  });
}

test('speak, interrupt and stopAvatar are refused in the wrong state, before any request', async () => {
  const avatar = guardAvatar(new FakeAvatar());
  await refused(avatar.speak({ text: 'no session yet' }), 10006);
  await avatar.createStartAvatar();
  assert.equal(guardOf(avatar).state, 'connecting', 'learnt from newSession and startSession');
  await refused(avatar.speak({ text: 'too early' }), 10002);
  await refused(avatar.interrupt(), 10002);
  await refused(avatar.startSession(), 10002);
  assert.deepEqual(avatar.sent, ['streaming.new', 'streaming.start'], 'no request for a refused call');

  avatar.emit('session.state_updated', { type: 'session.state_updated', state: 'connected' });
  assert.equal(guardOf(avatar).state, 'connected');
  await avatar.speak({ text: 'hello' });
  await avatar.interrupt();
  avatar.emit('session.state_updated', { type: 'session.state_updated', state: 'connecting' });
  assert.equal(guardOf(avatar).state, 'connected', 'a late event does not move it back');
  await avatar.stopAvatar();
  await refused(avatar.stopAvatar(), 10005);
  await refused(avatar.keepAlive(), 10005);
  assert.deepEqual(avatar.sent, ['streaming.new', 'streaming.start', 'streaming.task', 'streaming.interrupt', 'streaming.stop']);
});

test('a refusal of the server teaches the guard the state it names', async () => {
  const avatar = guardAvatar(new FakeAvatar());
  await avatar.newSession();
  await avatar.startSession();
  avatar.emit('stream_ready');
  assert.equal(guardOf(avatar).state, 'connected');
  avatar.fail = { code: 10005, message: 'Session state wrong: closed' }; // closed by a timer meanwhile
  await assert.rejects(avatar.speak({ text: 'late' }), (e) => e.status === 400 && !(e instanceof RefusedError));
  assert.equal(guardOf(avatar).state, 'closed');
  await refused(avatar.speak({ text: 'again' }), 10005);
  assert.equal(avatar.sent.filter((p) => p === 'streaming.task').length, 1);
});

test('a new session gets a fresh guard; wrapping twice changes nothing', async () => {
  const avatar = guardAvatar(new FakeAvatar());
  assert.equal(guardAvatar(avatar), avatar);
  await avatar.newSession();
  await avatar.stopAvatar();
  assert.equal(guardOf(avatar).state, 'closed');
  await avatar.newSession();
  assert.equal(guardOf(avatar).state, 'new');
  assert.equal(avatar.sent.filter((p) => p === 'streaming.new').length, 2, 'newSession is never refused');
  assert.throws(() => guardAvatar({}), TypeError);
  assert.equal(guardOf({}), undefined);
});
