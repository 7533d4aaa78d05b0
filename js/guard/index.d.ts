// Types of @streamsession/guard (index.js). Written by hand and checked by
// `tsc --noEmit` on testdata/usage.ts; keep them in step with
// internal/jsgen/index.js.tmpl.

/** A session's lifecycle state, as the wire names it. */
export type State = 'new' | 'connecting' | 'connected' | 'closing' | 'closed';

/** A command the server accepts only in some states, by endpoint name. */
export type Command =
  | 'streaming.start'
  | 'streaming.ice'
  | 'streaming.task'
  | 'streaming.interrupt'
  | 'streaming.keep_alive'
  | 'streaming.start_listening'
  | 'streaming.stop_listening'
  | 'streaming.stop'
  | 'ws/streaming.chat';

/** What the server answers to a refused command. */
export interface Refusal {
  /** The HTTP status: 400 for a wrong state, 404 for an unknown session. */
  readonly status: number;
  /** The catalog code: 10001–10005 (the state the session is in), or 10006. */
  readonly code: number;
  /** The catalog message, "Session state wrong: <state>". */
  readonly message: string;
}

/** The five lifecycle states, in lifecycle order. */
export const states: readonly State[];

/** Every command the server gates by state. */
export const commands: readonly Command[];

/**
 * Returns null when a session in state accepts command, else the server's
 * answer. Throws a TypeError for an unknown state or command.
 */
export function check(state: State, command: Command): Refusal | null;

/** The states that accept command, in lifecycle order. */
export function acceptedStates(command: Command): State[];

/** A command refused before any request, with the server's answer. */
export class RefusedError extends Error implements Refusal {
  constructor(refusal: Refusal, command: Command);
  readonly name: 'RefusedError';
  readonly status: number;
  readonly code: number;
  readonly command: Command;
}

/** A call whose successful answer SessionGuard.observeAnswer learns from. */
export type AnsweredCall = Command | 'streaming.new';

/** One session's state, learnt from the server; only moves forward. */
export class SessionGuard {
  constructor(state?: State | null);
  /** The latest state observed, null before any. */
  readonly state: State | null;
  /** Learns a state; true when it moved forward. */
  observe(state: string): boolean;
  /** Learns from a realtime message (object or JSON text). */
  observeEvent(message: unknown): boolean;
  /** Learns from a call's answer: success (no error) or its error. */
  observeAnswer(call: AnsweredCall, error?: unknown): boolean;
  /** Learns the state a 10001–10005 error names. */
  observeError(error: unknown): boolean;
  /** null when the server would accept command now, else its answer (10006 before any state). */
  check(command: Command): Refusal | null;
  /** Throws a RefusedError where check returns a refusal. */
  assert(command: Command): void;
}
