// Types of @streamsession/guard/heygen (heygen.js). Written by hand and
// checked by `tsc --noEmit` on testdata/usage.ts.
import { RefusedError, SessionGuard, type Command, type Refusal } from './index.js';

/** A call refused by the guard, shaped like the SDK's APIError too. */
export class GuardedAPIError extends RefusedError {
  constructor(refusal: Refusal, command: Command);
  /** The body the server would have answered: {"code":…,"message":…}. */
  readonly responseText: string;
}

/** What guardAvatar needs of a StreamingAvatar (SDK 2.x). */
export interface GuardableAvatar {
  speak(...args: any[]): Promise<any>;
  on(eventType: string, listener: (...args: any[]) => void): unknown;
}

export interface GuardAvatarOptions {
  /** The guard to use; a new one (knowing no state) by default. */
  guard?: SessionGuard;
}

/** Wraps avatar's session calls in place with the guard and returns it. */
export function guardAvatar<A extends GuardableAvatar>(avatar: A, options?: GuardAvatarOptions): A;

/** The guard of an avatar wrapped by guardAvatar, undefined otherwise. */
export function guardOf(avatar: object): SessionGuard | undefined;
