package server

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
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
	req.account = ResolveAccount(s.accounts, account)
	if err := s.allow(ctx, req.account); err != nil {
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
	if err != nil {
		if errors.Is(err, sserrors.ErrSessionNotFound) {
			err = sserrors.ErrUnauthorized // an unknown id answers like a wrong token
		}
		s.fail(w, r, req, err)
		return
	}
	// The session becomes connected only once its socket exists: a failed
	// upgrade (the upgrader answers it) leaves it connecting.
	ws, err := s.upgrader.Upgrade(hijacker{w}, r, nil)
	if err != nil {
		return
	}
	// A media session becomes connected by its peer (ICE and DTLS up), not
	// by its socket.
	if info.State == fsm.Connecting && s.mediaJoins(id) {
		s.rt.Serve(ctx, ws, req.account, id)
		return
	}
	if _, err := s.mgr.Join(ctx, account, id); err != nil {
		// The session changed between the check above and the join (it
		// closed), or the store failed: the socket closes at once, with the
		// reason a client sees when its session closes, or try-again-later.
		code, text := websocket.CloseTryAgainLater, "try again later"
		if _, ok := sserrors.As(err); ok && sserrors.StatusOf(err) != http.StatusServiceUnavailable {
			code, text = websocket.CloseNormalClosure, realtime.ReasonSessionClosed
		}
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
		_ = ws.Close()
		if s.hooks.Refused != nil {
			s.hooks.Refused(Refusal{Endpoint: r.URL.Path, Account: req.account, SessionHash: session.ShortHash(id),
				Code: sserrors.CodeOf(err), Status: sserrors.StatusOf(err), Err: err, Context: ctx})
		}
		return
	}
	s.rt.Serve(ctx, ws, req.account, id)
}

// hijacker hands the upgrader the connection of a ResponseWriter that
// hides http.Hijacker behind a middleware's wrapper, through
// http.ResponseController (which follows Unwrap). A wrapper with neither
// fails the upgrade (500), and the session stays connecting.
type hijacker struct{ http.ResponseWriter }

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(h.ResponseWriter).Hijack()
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
