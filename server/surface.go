package server

import (
	"context"

	"github.com/streamsession/streamsession/session"
)

// Allow takes one request from the account's rate budget
// (Config.RateLimit), as every authenticated request of the Streaming API
// does, for a sibling surface served beside the Server (LiveAvatar's) so
// that both share one budget. It returns nil when the request may go on,
// 429/400140 with a Retry-After when the account is over its budget, and
// 503/400558 when the RateLimiter fails. It is safe for concurrent use.
func (s *Server) Allow(ctx context.Context, acct session.Account) error {
	return s.allow(ctx, acct)
}
