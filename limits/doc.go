// Package limits decides whether a new streaming session may be created: the
// trial quota (429/10015), the plan's concurrent sessions (429/10007) and the
// service's capacity (429/10014, transient), checked in that order.
//
// It owns the Limiter interface and its contract (below), the in-memory
// Limiter (Memory, the embedded default for one node), and, in
// limits/limitertest, the conformance suite that proves any implementation
// honours the contract. Backends with their own source of truth (Redis, a
// billing system) implement Limiter; limits/redislimiter is one. Start with
// Limiter, NewMemory and the package example, which composes a custom
// limiter in front of Memory.
//
// Every Limiter is safe for concurrent use by multiple goroutines.
//
// # Refusals are results, failures are errors
//
// Acquire returns a Decision: either a Lease or the Limit that refused.
// Limit.Err gives the catalog error a server sends for a refusal. An error
// from a Limiter is not a refusal: errors.Is(err, ErrUnavailable) means its
// backend could not be reached or failed, and the server answers HTTP 503
// with code 400558 (API connection error) and a Retry-After (one second).
// Whether a backend that is down fails closed (ErrUnavailable, the default)
// or fails open (grants, counted in a metric) is an explicit option of that
// backend. A backend failure never closes a running session: a Renew that
// fails with anything but ErrLeaseExpired is retried on the next round.
// A context done before the decision returns ctx.Err() and takes nothing; a
// request without an account or a session id is the catalog's 400175
// (Invalid parameter) and changes nothing.
//
// # Order of checks
//
// Acquire for a session id that already holds a live slot in the account
// returns that slot, renewed, without any check: a retried request must not
// take a second slot nor be refused by its own first grant. Otherwise the
// checks run in this order, and the first that refuses is reported:
//
//  1. trial quota (trial plans only): the account's trial time this month,
//     running sessions included, is at least Plan.MonthlyMinutes (so 0
//     refuses every acquire);
//  2. plan concurrency: the account holds Plan.MaxConcurrent slots (so 0
//     refuses every acquire);
//  3. service capacity: the service holds its capacity of slots.
//
// A refused acquire takes nothing and changes no count. On an error the
// Decision means nothing.
//
// # Slots and leases
//
// A slot is held from the grant until Release, whatever closes the session.
// So that a holder that dies (a node killed) cannot keep a slot for ever,
// the slot is held through a Lease that expires at Lease.Expires, a lease
// TTL after the grant or the last Renew. A lease is expired from the instant
// Expires is reached. The holder renews every open lease well inside the TTL
// (the session manager does so at a third of it); Renew of a lease that
// expired or was released returns ErrLeaseExpired, and its session must be
// closed: its slot may already belong to someone else. An expired lease's
// slot is free at once: an acquire that would be refused for concurrency or
// capacity first reclaims expired leases, so expiry is exact. Releasing is
// idempotent, and releasing an expired lease is harmless.
//
// A holder whose sessions outlive it (several nodes sharing a session store,
// any of which may close any session) keeps the slot instead of renewing it:
// Keep makes a live lease durable, so that it never expires and costs the
// backend nothing while the session lasts; Release frees it, from whichever
// node closes the session. A lease is kept only once the session is
// recorded where the other nodes find it: a holder that dies between the
// grant and the Keep loses the slot when the lease expires, never later.
//
// # Trial minutes
//
// Trial minutes are counted per account per calendar month (UTC), for
// sessions acquired under a trial plan, from Started to Release (or to the
// lease's expiry when the lease expired without a Release; a kept lease
// counts until its Release, whichever node releases it), once per
// session id: a second Started does not restart the count and a second
// Release does not count again. They are checked only when a session is
// acquired, with running sessions counted up to that instant: a session
// already running is never cut by the quota (its own
// Plan.SessionDurationLimit still closes it). A paid plan is never refused
// by the quota.
//
// Time that spans a month boundary is split at the boundary (midnight UTC on
// the first of the month): the part before counts for the old month, the
// part after for the new one. A new month therefore starts fresh except for
// what sessions running across midnight use after it.
//
// # Bringing your own limiter
//
// Implement Limiter (or wrap one, as the package example does); return
// ErrUnavailable, wrapped, when your source of truth cannot answer; a
// refusal of your own that is none of the three limits (a suspended
// account) may be returned as a catalog error (*errors.Error), which the
// session manager and the server pass through to the client. Then run
// limitertest.Run from your tests.
package limits
