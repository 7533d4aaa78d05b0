package limits

import "strconv"

// FailurePolicy says what a limiter whose backend is shared (Redis) does
// when the backend cannot be reached: refuse to decide, or let the caller
// through undecided. Every backend that has the choice takes this one type
// (limits/redislimiter for sessions, server/redisrate for request budgets)
// and documents what "open" means for it.
type FailurePolicy int

const (
	// FailClosed refuses to decide: the call returns an error wrapping
	// ErrUnavailable (HTTP 503, code 400558, Retry-After). The default.
	FailClosed FailurePolicy = iota
	// FailOpen lets the caller through without a decision and reports the
	// backend's error to the backend's hook, for a metric.
	FailOpen
)

// String returns "fail-closed" or "fail-open".
func (p FailurePolicy) String() string {
	switch p {
	case FailClosed:
		return "fail-closed"
	case FailOpen:
		return "fail-open"
	}
	return "FailurePolicy(" + strconv.Itoa(int(p)) + ")"
}

// Valid reports whether p is FailClosed or FailOpen.
func (p FailurePolicy) Valid() bool { return p == FailClosed || p == FailOpen }
