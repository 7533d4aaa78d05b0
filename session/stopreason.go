package session

import (
	"context"

	sserrors "github.com/streamsession/streamsession/errors"
)

// StopWithReason is [Manager.Stop] recording reason instead of ReasonStop,
// for a caller that says why it stops (a surface whose stop carries a
// reason). reason must be ReasonStop, ReasonUserDisconnected or
// ReasonAgentHangUp; any other value fails with 400175 and changes nothing.
// Everything else (states accepted, codes, concurrency) is Stop's.
func (m *Manager) StopWithReason(ctx context.Context, account, id string, reason Reason) (Info, error) {
	switch reason {
	case ReasonStop, ReasonUserDisconnected, ReasonAgentHangUp:
	default:
		return Info{}, sserrors.ErrInvalidParameter
	}
	if !m.enter() {
		return Info{}, ErrClosed
	}
	defer m.leave()
	return m.closeSession(ctx, account, id, reason, 0)
}
