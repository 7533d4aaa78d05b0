// Type-checked by `tsc --noEmit -p js/guard/testdata` in CI: index.d.ts must
// describe what a client writes, and reject what the module would refuse.
import {
  acceptedStates,
  check,
  commands,
  RefusedError,
  SessionGuard,
  states,
  type Command,
  type Refusal,
  type State,
} from '../index.js';

const first: State = states[0];
const all: readonly Command[] = commands;
const refusal: Refusal | null = check(first, 'streaming.task');
if (refusal !== null) {
  const code: number = refusal.code;
  const status: number = refusal.status;
  const message: string = refusal.message;
  void [code, status, message];
}
const accepted: State[] = acceptedStates('ws/streaming.chat');

const guard = new SessionGuard();
const moved: boolean = guard.observeEvent({ type: 'session.state_updated', state: 'connected' });
guard.observeAnswer('streaming.new');
guard.observeAnswer('streaming.task', { code: 10002 });
guard.observeError(new Error('boom'));
const now: State | null = guard.state;
const r: Refusal | null = guard.check('streaming.interrupt');
try {
  guard.assert('streaming.stop');
} catch (e) {
  if (e instanceof RefusedError) {
    const c: Command = e.command;
    void c;
  }
}

// @ts-expect-error: not a state
check("open", "streaming.task");
// @ts-expect-error: not a command
check('new', 'streaming.new');
// @ts-expect-error: state is read-only
guard.state = 'closed';

void [all, accepted, moved, now, r];

// The SDK wrapper, with a stand-in shaped like StreamingAvatar.
import { GuardedAPIError, guardAvatar, guardOf } from '../heygen.js';

class FakeAvatar {
  async speak(_req: { text: string }): Promise<unknown> {
    return null;
  }
  on(_type: string, _fn: (...args: any[]) => void): this {
    return this;
  }
}
const wrapped: FakeAvatar = guardAvatar(new FakeAvatar(), { guard: new SessionGuard('new') });
const g: SessionGuard | undefined = guardOf(wrapped);
wrapped.speak({ text: 'hi' }).catch((e: unknown) => {
  if (e instanceof GuardedAPIError) {
    const body: string = e.responseText;
    const code: number = e.code;
    void [body, code];
  }
});
// @ts-expect-error: not an avatar
guardAvatar({});
void g;
