package observe_test

import (
	"log/slog"
	"os"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/session"
)

// The lines SessionHooks logs: the session is named by its SessionRef, a
// refusal by its code and the catalog's message. In a program, put the
// hooks in session.Config.Hooks (here they are called by hand).
func ExampleSessionHooks() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime}))
	hooks := observe.SessionHooks(logger)

	id := "5f0c2f0e8a6b4d1c9e7a3b2d1c0f9e8d"
	hooks.OnTransition(session.Event{SessionID: id, Account: "acme", From: fsm.Unknown, To: fsm.New, Epoch: 1})
	hooks.OnTransition(session.Event{SessionID: id, Account: "acme", From: fsm.Connected, To: fsm.Closing, Epoch: 4, Reason: session.ReasonIdle})
	hooks.OnRefused(session.Account{Name: "acme"}, sserrors.CodeConcurrentLimitReached)
	// Output:
	// level=INFO msg="session transition" account=acme session=618477a229c5 from=unknown to=new epoch=1 reason=none
	// level=INFO msg="session transition" account=acme session=618477a229c5 from=connected to=closing epoch=4 reason=idle
	// level=INFO msg="session refused" account=acme code=10007 message="Concurrent limit reached"
}
