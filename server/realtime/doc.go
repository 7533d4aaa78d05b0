// Package realtime runs the realtime WebSocket of the Streaming API on one
// node: the registry of sockets (at most one per session), each socket's
// reader and writer, the messages on the wire, and the simulated speech of
// the avatars (avatar_start_talking / avatar_stop_talking).
//
// Package server authenticates the upgrade request and moves the session to
// connected, then hands the connection to [Hub.Serve]; its task and
// interrupt endpoints call [Hub.Say] and [Hub.Hush]. A Hub subscribes to the
// [session.Manager] and routes each transition to the session's socket.
//
// When several nodes serve one service, a [Relay] (server/redisrelay on
// Redis) carries speech commands and socket announcements between them; what
// that takes (which of a session's sockets survives across nodes) lives in
// one small type of its own, so that the single-node path carries no cluster
// state.
//
// # Wire decisions (ours)
//
//   - Every socket first receives session.state_updated with the session's
//     current state, then every later state and the speech events.
//   - A message that is not one of the three client messages, including
//     agent.speak without a non-empty text, gets an error event with 400175;
//     a binary frame is answered the same way. Every message received, valid
//     or not, counts as activity; ping/pong frames do not, but a client's
//     pings count against the message rate like its messages.
//   - Close codes: 1000 "session closed" after the closed state, 1000
//     "replaced by a new connection" for the old socket on reconnect (on
//     whichever node it is, with a Relay), 1001 "server shutting down", 1009
//     "message too big: over the socket's size bound" for an oversized
//     message, 1011 "session state unavailable: reconnect"
//     for a new socket whose session's state the Store could not give (it
//     cannot start with the state). A client that does not read its queue
//     (SocketConfig.SendQueue messages behind) is disconnected.
//   - Speech on several nodes (Config.Relay set): the node that receives a
//     task (streaming.task or agent.speak) computes its task_id and
//     duration_ms with its own TaskDuration, publishes them on the relay and
//     answers them; an interrupt is published the same way. No node
//     simulates speech directly: every node, the publisher included, applies
//     the relay's commands to its own model of each session's speech, in the
//     relay's order (one order for all nodes), and a session's closing
//     interrupts it on every node. Only the node holding the session's socket
//     has a socket to tell, so each avatar_start_talking and
//     avatar_stop_talking reaches the socket once, with the task_id and
//     duration_ms the caller was answered, wherever the socket is; a socket
//     that reopens on another node mid-speech hears that speech end there,
//     since that node modelled it too. The duration_ms of an interrupted
//     avatar_stop_talking is measured by the socket's node, from when it
//     heard the task. A Publish that fails answers its error (the Redis
//     relay: 503/400558), after the call counted as activity; nothing is
//     spoken. A node that misses a command (its relay subscription
//     reconnecting) does not model that speech: a socket on it hears
//     nothing of it. Without a Relay, speech is simulated on the receiving
//     node alone, as on a single node.
package realtime
