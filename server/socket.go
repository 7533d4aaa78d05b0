package server

import (
	"context"
	"errors"
	"net/http"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

// serveRealtime authenticates the realtime socket's upgrade, moves the
// session to connected and hands the connection to the realtime Hub. Every
// refusal is the JSON error with its status, never a 101.
func (s *Server) serveRealtime(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, token := q.Get("session_id"), q.Get("session_token")
	req := request{sessionID: id}
	if s.rt.Closed() {
		s.fail(w, r, req, errUnavailable)
		return
	}
	if !s.originPolicy.AllowsSocket(r) {
		s.fail(w, r, req, errForbiddenOrigin)
		return
	}
	ctx := r.Context()
	account, err := s.socketAccount(ctx, token, id)
	if err != nil {
		s.fail(w, r, req, err)
		return
	}
	req.account.Name = account
	if err := s.allow(ctx, account); err != nil {
		s.fail(w, r, req, err)
		return
	}
	info, err := s.mgr.Get(ctx, account, id)
	if err == nil && info.State != fsm.Connecting && info.State != fsm.Connected {
		err = sserrors.SessionState(info.State.String())
	}
	if err == nil && !IsHandshake(r) {
		err = sserrors.ErrInvalidParameter
	}
	if err == nil {
		_, err = s.mgr.Join(ctx, account, id)
	}
	if err != nil {
		if errors.Is(err, sserrors.ErrSessionNotFound) {
			err = sserrors.ErrUnauthorized // an unknown id answers like a wrong token
		}
		s.fail(w, r, req, err)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered; the session stays connected, as after a drop
	}
	s.rt.Serve(ctx, ws, account, id)
}

// socketAccount returns the account that session_token authorises for the
// session's socket: the session's access_token, or the bearer token that
// created the session (HeyGen's SDK 2.x passes the token it was built
// with). An unspent bearer token, or one spent on another session, opens
// no socket and so cannot replace the session's connection: 401/400112.
// Checking a bearer token does not change it. The caller still checks that
// the session is the account's (an unknown id answers like a wrong token).
func (s *Server) socketAccount(ctx context.Context, token, sessionID string) (string, error) {
	if account, ok := s.access.verify(token, sessionID); ok {
		return account, nil
	}
	if token == "" {
		return "", sserrors.ErrUnauthorized
	}
	account, err := s.tokens.Check(ctx, token, sessionID)
	if err != nil {
		return "", storeError(err)
	}
	return account, nil
}
