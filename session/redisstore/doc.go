// Package redisstore is a session.Store in Redis, so that several server
// nodes behind a load balancer serve the same sessions: a session created
// through node A can be started through node B, stopped through node C and
// listed from any of them, and the client's realtime socket on node A
// hears of it.
//
// Start with New (a redis.UniversalClient created with
// ContextTimeoutEnabled, and a Config whose zero value is usable), give the
// Store to session.Config.Store, and Close it after the Manager.
//
// # What it keeps, and how
//
// Every key lives under one hash tag ("{Prefix}:s:..."), so the whole
// store sits in one Redis Cluster slot. A session is a hash; each account
// has an index of its open sessions (List, from any node); each node has
// the set of the sessions created through it (Range: the Manager renews
// their leases and closes them on shutdown); one sorted set holds every
// session's next deadline; one holds the nodes' heartbeats.
//
// Every operation that changes a session is one Lua script, one round
// trip. A transition reads the state and epoch, looks the event up in the
// transition table compiled from fsm.Next, and writes the next state with
// the epoch plus one only if the epoch is still the one it read (or the
// one the change names): a conditional change that lost a race returns
// session.ErrConflict, never a silent success. Each change carries a
// nonce, so a script that Redis runs twice (go-redis retries a command
// whose reply was lost) applies once.
//
// # Events
//
// The script that commits a change also publishes it on the store's
// channel, so every node's Manager hears of every change of every node,
// in the order of the commits. A change made through this node is also
// delivered at once, before the call returns, when it is the session's
// next event (so that Manager.Close's closing and closed reach this node's
// subscribers before they end); an epoch guard drops the channel's copy.
// Each session's events thus reach the Manager once, in epoch order. When
// the subscription
// reconnects (messages published meanwhile are lost), the sessions the
// node has heard of are read again and what changed is delivered as one
// event per session. Hooks and subscribers therefore see the whole
// cluster's transitions on every node.
//
// # Timers
//
// Due claims, in one script, the deadlines that have passed: a claimed
// deadline moves to now + ClaimTTL, so each is handed to one node, and
// handed again to another if that node dies before the session changes.
// The Go side checks each with Record.NextTimeout (activity moves the idle
// deadline lazily: Touch writes only the record) and re-arms what moved.
//
// Each node renews a heartbeat every NodeTTL/3. A node whose heartbeat
// expired is dead: a live node marks its sessions lost and makes them due;
// Due reports them as session.TimeoutOrphaned and the Manager closes them
// (ReasonNodeLost), or finishes their close when they were closing. A node
// judges others only after NodeTTL of unbroken contact with Redis, so a
// Redis outage never closes running sessions. A session closing for longer
// than ClosingGrace (its closer gave up after the change was made, or
// died) is reported the same way and finished.
//
// Closed sessions are forgotten by the retention timer (Delete), and
// expire from Redis by themselves RetentionSlack later in case no node is
// left to do it. Once every session is closed and forgotten and every node
// closed, nothing of the store is left in Redis.
//
// # Failures
//
// A call that cannot reach Redis, or whose context ends first, fails with
// HTTP 503, code 400558 and a Retry-After (errors.Is still finds the
// context's error). A Redis that loses its data (restarted without
// persistence, flushed) loses the sessions: their sockets receive closed
// when the event subscription reconnects; run Redis with persistence (or a
// replica) when sessions must survive that.
//
// # Concurrency
//
// A Store is safe for concurrent use by multiple goroutines. It runs two
// goroutines, the heartbeat (from New) and the event listener (from
// Watch), plus those of go-redis's subscription; Close stops them.
package redisstore
