// Package redislimiter is a limits.Limiter whose state lives in Redis, so
// that every node of a service behind a load balancer enforces the same trial
// quota (10015), plan concurrency (10007) and service capacity (10014). It
// passes limits/limitertest unchanged. Nothing in the core imports it.
//
// Start with New, which takes a go-redis client (a *redis.Client, a
// *redis.ClusterClient or any redis.UniversalClient) and a Config; the
// Limiter is safe for concurrent use by multiple goroutines.
//
// # One script, one round trip
//
// Acquire, Started, Keep, Renew and Release are each one call of one Lua script,
// one round trip: EVALSHA, and after a NOSCRIPT (a SCRIPT FLUSH, a restart, a
// failover) the same call sends EVAL once, which loads the script again
// (go-redis's Script.Run). Scripts take the time from Redis TIME, never from
// the node's clock (unless Config.Clock says otherwise: tests); Redis 5 and later replicate the effects of scripts, so a
// script may write after TIME (tested with Redis 7). Only the trial-month
// arithmetic and lease expiries use the clock; node clocks matter only to
// the holder's heartbeat (see below).
//
// # Batching
//
// Calls made at the same moment share a script. A Limiter keeps at most
// Config.Flushers scripts in flight (2 by default), each sent by a goroutine
// of its own that lives while there is work. A call made while one of them is
// free leaves at once: alone it costs one round trip, as a script of its own
// would. A call made while all are out waits, and leaves with every call that
// waits with it (at most Config.BatchSize, 32 by default) in one script, as
// soon as a flusher is back. Inside the script the calls run one after the
// other, each exactly as it would alone, and each gets its own answer; a
// call that fails (a key of the wrong type) fails alone. A script's fixed
// cost (the call itself, its reply, reading Redis TIME, which is read once
// per script) and the client's per-command cost are so shared by the calls
// that wait together: under load, many goroutines' decisions cost a few
// round trips instead of one each, and the throughput grows with the load
// while a call still waits about one round trip. A script of 32 calls keeps
// Redis busy for well under a millisecond.
//
// # Keys
//
// Every key the scripts touch is named in KEYS[] and starts with the hash tag
// "{Prefix}", so that all of them live in one Redis Cluster slot and a
// script never crosses slots. On a cluster this puts the whole limiter on one
// shard: the service's capacity is one atomic count, which a single slot is
// what makes possible.
//
//	{P}:cap          ZSET  every slot of the service: member len(account):account+session id, score lease expiry (ms)
//	{P}:slots:<acct> ZSET  the account's slots: member session id, score lease expiry (ms)
//	{P}:run:<acct>   HASH  the account's trial sessions: session id -> start (ms), 0 until Started
//	{P}:used:<acct>  HASH  the account's finished trial time: yyyymm (UTC month) -> milliseconds
//	{P}:epoch        STRING when the first slot of this data set was granted (ms)
//
// A slot is live while its expiry is in the future; counts use live members
// only, so an expired lease frees its slot at its expiry, exactly, whether or
// not it has been removed yet. The account's keys expire 40 days after their
// last use (the first slot of the account, renewals, counted minutes), so an
// account nobody uses any more leaves nothing behind. Use a maxmemory policy
// that never evicts the limiter's keys (noeviction).
//
// # Bounded work
//
// A call never walks a set. Sets are counted with ZCARD (expired members
// included); only a count at or over a limit is made exact, by removing at
// most Config.PurgeBatch expired members (ZRANGEBYSCORE ... LIMIT, then
// ZREM) and counting live members (ZCOUNT). A backlog of expired members (a
// million left by dead nodes) is so worked off a batch per call, and a set
// never holds more than its limit plus what expired since the last call that
// found it full; the service set without a capacity is purged the same way
// past 4096 members. A trial acquire reads the account's running sessions,
// bounded the same way by the plan's concurrency.
//
// # Idempotence
//
// go-redis resends a command whose reply it lost, and a command queued in a
// paused Redis may run after its caller gave up, so every script may run
// twice: an Acquire that finds its session's live slot renews it and takes no
// second one; a Started that finds the session started, or without a live
// slot, changes nothing; a Release that finds no slot and no running trial
// session changes nothing. Trial minutes move from the session's start
// marker (in run) to the month's counter (in used) exactly once, when the
// marker is removed. An Acquire that returned an error may have taken a slot:
// the next Acquire for the same session id finds it, or it expires after
// LeaseTTL.
//
// # Trial minutes
//
// A trial session counts from Started until Release, or until its lease's
// expiry when its holder died; the time is split at UTC month boundaries and
// only the current month is checked, running sessions included (see package
// limits). Sessions acquired under a paid plan count nothing.
//
// # Leases and heartbeats
//
// A slot lives Config.LeaseTTL (30 s by default) unless its holder renews
// it. A holder renews every open lease at most every LeaseTTL/3 (the session
// manager renews at a third of the shortest lease lifetime it was granted),
// so two renewals in a row may fail before the slot is lost. A node that is
// killed loses its slots within LeaseTTL of its last renewal: nothing leaks.
// Renew answers limits.ErrLeaseExpired when the slot is gone (the session
// must close: its slot may belong to someone else by now) and
// limits.ErrUnavailable when Redis cannot be reached in time (the session
// keeps running; renew again at the next heartbeat). The lease's Expires is
// in Redis time: keep node clocks synchronised (NTP), since the holder
// schedules its heartbeat from it.
//
// Keep makes a live slot durable: its score becomes 2^52 ms (no clock
// reaches it), so it is never purged and never renewed, and it costs Redis
// nothing until Release frees it. The session manager keeps a session's slot
// once the session is recorded in a store shared by the nodes, since any
// node then closes it (and releases it); an idle open session then costs
// Redis no command at all. While an account holds a kept slot its keys do
// not expire; the release of its last kept slot gives them their 40 days
// back. Only what Keep is given is kept: a slot whose holder died before
// Keep expires with its lease.
//
// # When Redis fails
//
// A Redis outage never ends running sessions: Started, Renew and Release
// return errors wrapping limits.ErrUnavailable and nothing panics. When Redis
// comes back without the data (a restart without persistence, a failover to
// a replica that had not seen it), Renew puts back the leases it lost: a
// lease last renewed before the current data set's first grant (the epoch
// key) has no trace because Redis lost it, not because it was released or
// expired. Such slots count again from then on, even where that exceeds a
// limit for a while, and the minutes of running trial sessions before the
// loss are lost with the data.
//
// Acquire follows Config.Failure (a limits.FailurePolicy): FailClosed (the
// default) returns an error wrapping limits.ErrUnavailable, which the server
// sends as HTTP 503 with code 400558 and a Retry-After; FailOpen admits the session with a lease
// known to this node only, counts it (Limiter.FailOpenCount and
// Config.OnFailOpen, for a metric) and puts it into Redis at its first
// renewal (or Keep) that reaches Redis.
//
// # Deadlines
//
// Every call returns by its context's deadline: callers wait for their
// answer or their context, whatever the client. A call whose context ends
// while it waits for a flusher is taken out of the queue and never sent; one
// whose context ends while its script is out returns at once, and the script
// goes on for the others (it may still apply the call: see Idempotence).
// With a client created with ContextTimeoutEnabled a script is abandoned at
// the latest deadline of the calls it carries; with any other client it
// lasts until the client's ReadTimeout, and Close waits for it. A deadline
// that passes while Redis does not answer (killed, CLIENT PAUSE, DEBUG
// SLEEP, a network partition) is an error wrapping both
// limits.ErrUnavailable and context.DeadlineExceeded. A context already done
// before the call returns its error and sends nothing.
package redislimiter
