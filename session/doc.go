// Package session owns streaming-avatar sessions on the server side, and
// the client-side Guard.
//
// A Manager creates sessions for accounts (checking the avatar with an
// AvatarCatalog and taking a slot from a limits.Limiter), moves them through
// new → connecting → connected → closing → closed on API calls (Start, Join,
// Command, Touch, Stop) and on timers (idle, duration, join; then retention,
// after which a closed session is forgotten), releases each slot exactly
// once whatever closed the session, and tells subscribers (Subscribe) and
// Hooks about every change. Every call in a state the command policy
// (fsm.Allow) does not accept fails with the 10001–10005 error naming the
// state the session is in; an unknown session and another account's session
// both fail with 10006.
//
// Sessions live in a Store. MemoryStore keeps them in this process (by
// default a transition applies fsm.Next, the table compiled from the
// looplab/fsm lifecycle definition, as a compare-and-set on the record;
// MemoryStoreConfig.MachinePerSession runs each session through its own
// fsm.Machine instead, for three times the memory and over twice the
// time); the Store contract (atomic, epoch-numbered
// transitions with a typed ErrConflict, deadlines found by the store) lets
// a shared store (Redis) take its place without changing the Manager;
// session/storetest is the suite that checks a Store against it.
//
// Concurrency: Manager, MemoryStore and Guard are safe for concurrent use
// by multiple goroutines. A Manager runs a fixed set of goroutines whatever
// the number of sessions (one timer loop, one lease renewer, one per
// subscriber) and no timer or goroutine per session; Close stops them all.
// Subscribers are called on their own goroutine and never block a
// transition; Hooks are called synchronously and must be fast. The work the
// Manager does on its own goroutines (timers, renewals) has no caller to
// fail: its failures go to Hooks.OnBackgroundError.
//
// Where to start: NewManager with a Config (Limiter and Avatars are
// required), then Manager.Create; see the Manager example for a whole
// session and the Guard example for a client refusing a command before the
// session is connected.
package session
