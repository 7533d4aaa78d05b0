package errors

import "time"

// ErrBackendUnavailable is what a service answers when a backend it depends
// on (the limiter's store, a shared session store, Redis) cannot be reached
// or did not answer in time: HTTP 503 with the catalog's 400558 (API
// connection error) and a Retry-After of one second. It is ours: the seed
// gives 400558 no status. Packages wrap it with their own cause.
var ErrBackendUnavailable = ErrAPIConnectionError.WithStatus(503).WithRetryAfter(time.Second)
