package server

import "context"

// Allow takes one request from the named account's rate budget
// (Config.RateLimit), as every authenticated request of the Streaming API
// does, for a sibling surface served beside the Server (LiveAvatar's) so
// that both share one budget. It returns nil when the request may go on,
// 429/400140 with a Retry-After when the account is over its budget, and
// 503/400558 when the RateLimiter fails. It is safe for concurrent use.
func (s *Server) Allow(ctx context.Context, account string) error {
	return s.allow(ctx, account)
}
