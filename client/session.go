package client

import (
	"context"
	"net/http"
	"sync"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/session"
)

// stopGrace is how long Stop waits for the server to end the realtime
// socket after closed before it closes the socket itself.
const stopGrace = 2 * time.Second

// Session is one remote session, from [Client.NewSession]. It knows the
// session's last known state and guards every command with it (see the
// package doc). It is safe for concurrent use by multiple goroutines.
type Session struct {
	c             *Client
	id            string
	accessToken   string
	realtime      string
	paid          bool
	durationLimit time.Duration

	guard session.Guard

	connectMu sync.Mutex // serialises Connect
	mu        sync.Mutex
	stream    *stream // the realtime socket, nil until Connect
}

// ID returns the session id.
func (s *Session) ID() string { return s.id }

// State returns the session's last known state: new after NewSession, then
// whatever answers and socket events taught it. States only move forward.
func (s *Session) State() fsm.State { return s.guard.State() }

// IsPaid reports the session's is_paid.
func (s *Session) IsPaid() bool { return s.paid }

// DurationLimit is how long the session may last once started; 0 is no
// limit.
func (s *Session) DurationLimit() time.Duration { return s.durationLimit }

// RealtimeEndpoint returns the session's realtime socket URL, access token
// included: a secret, not for logs.
func (s *Session) RealtimeEndpoint() string { return s.realtime }

// TaskResult is the answer of streaming.task. It is a plain value.
type TaskResult struct {
	TaskID string
	// Duration is how long the avatar speaks the text.
	Duration time.Duration
}

// sessionBody is the body of the commands that name the session only.
type sessionBody struct {
	SessionID string `json:"session_id"`
}

// command checks cmd against the guard, sends it, and learns the state
// from the answer: after a success, the state the command leads to (or at
// least the one it needs); after a 1000x refusal, the state it names.
func (s *Session) command(ctx context.Context, cmd fsm.Command, path string, body any, resend bool, out any) error {
	if s.c.guard {
		if err := fsm.Allow(s.guard.State(), cmd); err != nil {
			return err
		}
	}
	err := s.c.do(ctx, call{method: http.MethodPost, path: path, body: body, resend: resend}, out)
	if err == nil {
		switch cmd {
		case fsm.CmdStart:
			s.guard.Observe(fsm.Connecting)
		case fsm.CmdStop:
			s.guard.Observe(fsm.Closed)
		case fsm.CmdTask, fsm.CmdInterrupt, fsm.CmdKeepAlive, fsm.CmdStartListening, fsm.CmdStopListening:
			s.guard.Observe(fsm.Connected)
		}
		return nil
	}
	s.learn(err)
	return err
}

// learn observes the state a 10001–10005 refusal names.
func (s *Session) learn(err error) {
	e, ok := sserrors.As(err)
	if !ok {
		return
	}
	for _, st := range fsm.States() {
		if fsm.StateError(st).Code == e.Code {
			s.guard.Observe(st)
			return
		}
	}
}

// Start starts the session (streaming.start): new → connecting. Accepted in
// new only; otherwise the state's 1000x error, from the guard without a
// request. Opening the realtime socket ([Session.Connect]) then moves it
// to connected.
func (s *Session) Start(ctx context.Context) error {
	return s.command(ctx, fsm.CmdStart, pathStart, sessionBody{s.id}, false, nil)
}

// Task makes the avatar speak text (streaming.task with the server's
// defaults, task_type repeat and task_mode sync). Accepted in connected
// only. An empty text is refused by the server with 40001. It is not resent
// after a request that got no answer (the avatar would speak twice).
func (s *Session) Task(ctx context.Context, text string) (TaskResult, error) {
	return s.TaskWith(ctx, TaskRequest{Text: text})
}

// TaskRequest is the body of streaming.task. It is a plain value.
type TaskRequest struct {
	Text string
	// Type is "repeat" (say Text), "chat" or "talk"; empty is repeat.
	Type string
	// Mode is "sync" or "async"; empty is sync.
	Mode string
}

// TaskWith is Task with every field of streaming.task. An unknown Type or
// Mode is refused by the server with 400175.
func (s *Session) TaskWith(ctx context.Context, req TaskRequest) (TaskResult, error) {
	var data struct {
		TaskID     string `json:"task_id"`
		DurationMS int64  `json:"duration_ms"`
	}
	body := struct {
		SessionID string `json:"session_id"`
		Text      string `json:"text"`
		TaskType  string `json:"task_type,omitempty"`
		TaskMode  string `json:"task_mode,omitempty"`
	}{s.id, req.Text, req.Type, req.Mode}
	if err := s.command(ctx, fsm.CmdTask, pathTask, body, false, &data); err != nil {
		return TaskResult{}, err
	}
	return TaskResult{TaskID: data.TaskID, Duration: time.Duration(data.DurationMS) * time.Millisecond}, nil
}

// Interrupt stops the avatar's current speech (streaming.interrupt); a
// no-op success when it is silent. Accepted in connected only.
func (s *Session) Interrupt(ctx context.Context) error {
	return s.command(ctx, fsm.CmdInterrupt, pathInterrupt, sessionBody{s.id}, false, nil)
}

// KeepAlive resets the session's idle deadline (streaming.keep_alive).
// Accepted in connected only; resent after a request that got no answer.
func (s *Session) KeepAlive(ctx context.Context) error {
	return s.command(ctx, fsm.CmdKeepAlive, pathKeepAlive, sessionBody{s.id}, true, nil)
}

// StartListening is streaming.start_listening. Accepted in connected only.
func (s *Session) StartListening(ctx context.Context) error {
	return s.command(ctx, fsm.CmdStartListening, pathStartListening, sessionBody{s.id}, false, nil)
}

// StopListening is streaming.stop_listening. Accepted in connected only.
func (s *Session) StopListening(ctx context.Context) error {
	return s.command(ctx, fsm.CmdStopListening, pathStopListening, sessionBody{s.id}, false, nil)
}

// Stop ends the session (streaming.stop) and returns once it is closed and
// its slot free. Accepted in new, connecting and connected; a second Stop
// is refused with 10005 by the guard. After a successful stop, it waits (up
// to 2 s, and never past ctx) for the server to end the realtime socket,
// so that its closing and closed events are delivered, then closes the
// socket itself; when Stop returns no goroutine of the session is left.
func (s *Session) Stop(ctx context.Context) error {
	if err := s.command(ctx, fsm.CmdStop, pathStop, sessionBody{s.id}, false, nil); err != nil {
		return err
	}
	if st := s.current(); st != nil {
		t := time.NewTimer(stopGrace)
		select {
		case <-st.done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		st.close()
	}
	return nil
}

// Close closes the realtime socket, if any, and waits for its goroutine;
// the event channel closes. A Connect in progress is waited for (its dial
// is bounded by its ctx) and its socket closed too, so that no socket
// outlives Close. The session itself goes on (its idle timer runs); call
// Stop to end it. Close is idempotent and returns nil.
func (s *Session) Close() error {
	s.connectMu.Lock()
	defer s.connectMu.Unlock()
	if st := s.current(); st != nil {
		st.close()
	}
	return nil
}

func (s *Session) current() *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream
}
