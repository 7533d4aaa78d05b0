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
// the set of the sessions created through it (Range: the Manager closes
// them on shutdown); one sorted set holds every session's next deadline.
// Each account also has an index of its closed sessions, in the order they
// closed: past Config.MaxClosedPerAccount (1,000), the script that closes a
// session forgets the account's oldest closed one (10006), so that churn
// cannot grow Redis without bound within the retention window.
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
// event per state skipped (a session closed and forgotten meanwhile with
// its own reason, from the note its forgetting left), and the open
// sessions with a deadline that it had not heard of are delivered from
// unknown. Hooks and subscribers therefore see the whole cluster's
// transitions on every node.
//
// # Timers
//
// Due claims, in one script, the deadlines that have passed: a claimed
// deadline moves to now + ClaimTTL, so each is handed to one node, and
// handed again to another if that node dies before the session changes.
// The Go side checks each with Record.NextTimeout (activity moves the idle
// deadline lazily: Touch writes only the record) and re-arms what moved.
//
// A session closing for longer than ClosingGrace (its closer gave up after
// the change was made, died, or could not release the slot) is reported as
// session.TimeoutOrphaned, and the Manager that claims it finishes the
// close. A close begun through this node and still closing after
// CloseRetryAfter (cut by a Redis failure) has its deadline moved to now
// by the loss checker, so it is finished as soon as Redis answers.
//
// # Nodes that die
//
// Sessions belong to the service, not to a node (the Store is a
// session.SharedStore). A node keeps no heartbeat: when one dies (SIGKILL),
// its sessions go on. Their deadlines sit in the deadline set, which every
// node's Due polls, so their join, idle and duration timers fire on the
// live nodes at the usual instants; their clients reopen their sockets
// through another node; their slots are kept in the limiter (the Manager
// keeps a slot once the session is recorded) and released by whichever node
// closes them. A node that dies between the limiter's grant and the
// session's insert leaves a slot that expires with its lease; one that dies
// between the insert and the Keep leaves a session whose slot expires with
// its lease while the session goes on until its timers or a stop end it
// (the account may hold one session more than its plan meanwhile, and a
// trial session's minutes count only until the lease expired). Nodes that
// ran an earlier
// version left a "{Prefix}:s:nodes" key: nothing reads it any more, and it
// may be deleted.
//
// # What an idle session costs
//
// Nothing per session: an open session sends no command while nothing
// happens to it. Each node's timer loop runs Due (one script) at its next
// deadline and at least every PollInterval (5 s), so a cluster of n idle
// nodes costs Redis about n/5 scripts a second, plus n/2 for the data-loss
// marker (one small script every LossCheckInterval, 2 s), whatever the
// number of sessions; the event subscription costs nothing while nobody
// changes a session.
//
// Closed sessions are forgotten by the retention timer (Delete), and
// expire from Redis by themselves RetentionSlack later in case no node is
// left to do it. Once every session is closed and forgotten and every node
// closed, nothing of the store is left in Redis but the marker, which
// expires a minute later.
//
// # Failures
//
// A call that cannot reach Redis, or whose context ends first, fails with
// HTTP 503, code 400558 and a Retry-After (errors.Is still finds the
// context's error). A Redis that loses its data (restarted without
// persistence, flushed) loses the sessions. Each node notices within
// Config.LossCheckInterval (2 s): it keeps a marker key ("{Prefix}:s:marker",
// expiring a minute after the last node looked at it) and finds it gone or
// replaced. The sessions it knew open then get closing and closed with
// session.ReasonStoreLost (a closing one closed with its own reason), so
// their sockets are told why and closed, and Config.OnDataLoss is called
// to count and log it. A restart is also seen when the event subscription
// reconnects. Run Redis with persistence (or a replica) when sessions must
// survive that.
//
// # Concurrency
//
// A Store is safe for concurrent use by multiple goroutines. It runs one
// goroutine, the event listener (from Watch), plus those of go-redis's
// subscription; Close stops them.
package redisstore
