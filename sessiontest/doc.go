// Package sessiontest helps you test your own code around session
// transitions: hooks and subscribers that bill, notify or tear down a
// renderer when a session moves. It needs no real timers and no sleeps.
//
//   - [Recorder] records the Events a Manager publishes (as
//     session.Hooks.OnTransition, or as a subscriber) and the calls your hooks
//     make, waits for a state, and fails a test with a readable account of
//     what happened ("session #1a2b3c: states new → connecting → closed, want
//     new → connecting → connected → closing → closed").
//   - [Tap] lets a test outside a testing/synctest bubble wait until every
//     subscriber has seen every event published so far ([Tap.Settle]): what
//     synctest.Wait gives inside a bubble.
//   - [Clock] is a session.Clock that moves only when told ([Clock.Advance]),
//     for tests that cannot run in a synctest bubble. Inside a bubble you need
//     none: the Manager's default clock is the bubble's fake time.
//
// The examples show the three common cases: billing a session when it
// closes, checking that a hook sees connecting → connected → closing →
// closed in order, and an idle timeout closing a session with reason idle
// (with Clock; TestIdleTimeoutInBubble in example_test.go does it in a
// synctest bubble, which a runnable Example cannot create).
package sessiontest
