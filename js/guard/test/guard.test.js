// node --test js/guard/test/
//
// The matrix test reads the table named by GUARD_MATRIX: the Go tests of
// js/guard write it from the Go policy, or from a live server's answers, and
// run this file with it, so the module cannot drift from either. Run alone,
// it skips the matrix and runs the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { acceptedStates, check, commands, RefusedError, SessionGuard, states } from '../index.js';

const matrixFile = process.env.GUARD_MATRIX;

test('every state × command cell answers as the table says', { skip: matrixFile ? false : 'GUARD_MATRIX not set' }, () => {
  const table = JSON.parse(readFileSync(matrixFile, 'utf8'));
  assert.deepEqual([...states], table.states, 'states');
  assert.deepEqual([...commands], table.commands, 'commands');
  assert.equal(table.cells.length, states.length * commands.length, 'one cell per state and command');
  const seen = new Set();
  for (const cell of table.cells) {
    seen.add(cell.state + ' ' + cell.command);
    const got = check(cell.state, cell.command);
    assert.deepEqual(got === null ? null : { ...got }, cell.want,
      `check(${JSON.stringify(cell.state)}, ${JSON.stringify(cell.command)}) (${table.source})`);
  }
  assert.equal(seen.size, table.cells.length, 'no cell twice');
});

test('states and commands are frozen', () => {
  assert.ok(Object.isFrozen(states));
  assert.ok(Object.isFrozen(commands));
  assert.deepEqual([...states], ['new', 'connecting', 'connected', 'closing', 'closed']);
  for (const c of ['streaming.start', 'streaming.task', 'streaming.interrupt', 'streaming.keep_alive', 'streaming.stop', 'streaming.ice']) {
    assert.ok(commands.includes(c), c);
  }
});

test('check throws a TypeError for an unknown state or command', () => {
  for (const [s, c] of [['bogus', 'streaming.task'], ['Connected', 'streaming.task'], [null, 'streaming.task'],
    ['new', 'streaming.bogus'], ['new', 'task'], ['new', undefined], ['new', 'streaming.new']]) {
    assert.throws(() => check(s, c), TypeError, `check(${s}, ${c})`);
  }
  assert.throws(() => acceptedStates('nope'), TypeError);
});

test('refusals name the state the session is in', () => {
  states.forEach((s, i) => {
    const r = check(s, 'streaming.start') ?? check(s, 'streaming.task');
    assert.deepEqual({ ...r }, { status: 400, code: 10001 + i, message: `Session state wrong: ${s}` });
  });
});

test('SessionGuard refuses with 10006 before it knows a state', () => {
  const g = new SessionGuard();
  assert.equal(g.state, null);
  assert.deepEqual({ ...g.check('streaming.stop') }, { status: 404, code: 10006, message: 'Session not found' });
  assert.throws(() => g.check('streaming.bogus'), TypeError);
});

test('SessionGuard never moves backward', () => {
  const g = new SessionGuard('new');
  assert.equal(g.check('streaming.start'), null);
  assert.equal(g.observe('connected'), true);
  assert.equal(g.observe('connecting'), false, 'a late connecting');
  assert.equal(g.observe('new'), false);
  assert.equal(g.observe('connected'), false, 'the same state');
  assert.equal(g.observe('bogus'), false);
  assert.equal(g.observe(3), false);
  assert.equal(g.state, 'connected');
  assert.equal(g.check('streaming.task'), null);
  assert.equal(g.check('streaming.start').code, 10003);
  assert.equal(g.observe('CLOSED'), true, 'wire names compare case-insensitively');
  assert.equal(g.state, 'closed');
  assert.equal(g.check('streaming.stop').code, 10005);
});

test('SessionGuard learns from session.state_updated events', () => {
  const g = new SessionGuard();
  assert.equal(g.observeEvent('{"type":"session.state_updated","state":"connected"}'), true);
  assert.equal(g.observeEvent({ type: 'avatar_start_talking', state: 'closed' }), false, 'not a state event');
  assert.equal(g.observeEvent('not json'), false);
  assert.equal(g.observeEvent(null), false);
  assert.equal(g.observeEvent({ event_type: 'session.state_updated', state: 'connecting' }), false, 'late');
  assert.equal(g.state, 'connected');
  assert.equal(g.observeEvent({ type: 'session.state_updated', state: 'closing', reason: 'idle' }), true);
  assert.equal(g.check('streaming.task').code, 10004);
});

test('SessionGuard learns from API answers', () => {
  const g = new SessionGuard();
  assert.equal(g.observeAnswer('streaming.new'), true);
  assert.equal(g.state, 'new');
  assert.equal(g.observeAnswer('streaming.start'), true);
  assert.equal(g.state, 'connecting');
  assert.equal(g.observeAnswer('streaming.task', { code: 10003, message: 'Session state wrong: connected' }), true);
  assert.equal(g.state, 'connected');
  assert.equal(g.observeAnswer('streaming.task', { code: 400112 }), false, 'not a state error');
  assert.equal(g.observeError({ code: '10002' }), false, 'late');
  assert.equal(g.observeAnswer('streaming.stop'), true);
  assert.equal(g.state, 'closed');
  assert.throws(() => g.observeAnswer('streaming.bogus'), TypeError);
});

test('assert throws a RefusedError carrying the answer', () => {
  const g = new SessionGuard('connecting');
  g.assert('streaming.ice');
  assert.throws(() => g.assert('streaming.task'), (e) => {
    assert.ok(e instanceof RefusedError);
    assert.ok(e instanceof Error);
    assert.equal(e.status, 400);
    assert.equal(e.code, 10002);
    assert.equal(e.message, 'Session state wrong: connecting');
    assert.equal(e.command, 'streaming.task');
    return true;
  });
});
