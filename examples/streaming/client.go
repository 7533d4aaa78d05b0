package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamsession/streamsession/client"
	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
)

type clientOptions struct {
	BaseURL string
	APIKey  string
	Text    string
}

// demo prints the steps and events of one session.
type demo struct {
	out io.Writer
}

// runClient runs a whole session against a server with package client, the
// way a HeyGen SDK does: a token from the API key, then every call with the
// token. It prints each step and event: create_token, avatar.list, new, a
// task refused by the guard, start, the socket, a task, a task interrupted,
// keep_alive, stop.
func runClient(ctx context.Context, opts clientOptions, out io.Writer) error {
	d := &demo{out: out}
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()

	d.step("POST /v1/streaming.create_token with X-Api-Key")
	keyed, err := client.New(opts.BaseURL, client.WithAPIKey(opts.APIKey), client.WithHTTPClient(hc))
	if err != nil {
		return err
	}
	token, err := keyed.CreateToken(ctx)
	if err != nil {
		return failed("streaming.create_token", err)
	}
	d.printf("token %s (one streaming.new, then this session's calls)", abbreviate(token))
	c, err := client.New(opts.BaseURL, client.WithToken(token), client.WithHTTPClient(hc))
	if err != nil {
		return err
	}

	d.step("GET /v1/streaming/avatar.list")
	avatars, err := c.Avatars(ctx)
	if err != nil {
		return failed("streaming/avatar.list", err)
	}
	for _, a := range avatars {
		status := "INACTIVE"
		if a.Active {
			status = "ACTIVE"
		}
		d.printf("avatar %s public=%v status=%s", a.ID, a.Public, status)
	}

	d.step("POST /v1/streaming.new {} (with an Idempotency-Key: a retry never makes a second session)")
	s, err := c.NewSession(ctx, client.NewSessionRequest{})
	if err != nil {
		return failed("streaming.new", err)
	}
	d.printf("session %s: %s (is_paid=%v, session_duration_limit=%ds)", s.ID(), s.State(), s.IsPaid(), int(s.DurationLimit()/time.Second))
	stopped := false
	defer func() {
		if !stopped { // leave nothing behind on an early return
			_ = s.Stop(context.WithoutCancel(ctx))
		}
		_ = s.Close()
	}()

	d.step("streaming.task before the session is connected")
	if _, err := s.Task(ctx, opts.Text); err != nil {
		d.printf("the guard refuses it without a network call: %s", describe(err))
	}

	d.step("POST /v1/streaming.start")
	if err := s.Start(ctx); err != nil {
		return failed("streaming.start", err)
	}
	d.printf("session: %s", s.State())

	d.step("open the realtime socket (realtime_endpoint)")
	events, err := s.Connect(ctx)
	if err != nil {
		return failed("realtime socket", err)
	}
	if err := d.await(ctx, events, func(ev client.Event) bool {
		st, ok := ev.(client.StateEvent)
		return ok && st.State == fsm.Connected
	}); err != nil {
		return err
	}

	d.step("POST /v1/streaming.task")
	task, err := s.Task(ctx, opts.Text)
	if err != nil {
		return failed("streaming.task", err)
	}
	d.printf("task %s: the avatar speaks for %d ms", task.TaskID, task.Duration.Milliseconds())
	if err := d.await(ctx, events, stopTalking(task.TaskID)); err != nil {
		return err
	}

	d.step("POST /v1/streaming.task, then /v1/streaming.interrupt while the avatar speaks")
	long, err := s.Task(ctx, strings.Repeat(opts.Text+" ", 4))
	if err != nil {
		return failed("streaming.task", err)
	}
	if err := d.await(ctx, events, func(ev client.Event) bool {
		st, ok := ev.(client.StartTalkingEvent)
		return ok && st.TaskID == long.TaskID
	}); err != nil {
		return err
	}
	if err := s.Interrupt(ctx); err != nil {
		return failed("streaming.interrupt", err)
	}
	if err := d.await(ctx, events, stopTalking(long.TaskID)); err != nil {
		return err
	}

	d.step("POST /v1/streaming.keep_alive")
	if err := s.KeepAlive(ctx); err != nil {
		return failed("streaming.keep_alive", err)
	}
	d.printf("the idle deadline starts again")

	d.step("POST /v1/streaming.stop")
	if err := s.Stop(ctx); err != nil {
		return failed("streaming.stop", err)
	}
	stopped = true
	d.printf("stopped: the session is closed and its slot free")
	for ev := range events { // until the server closes the socket
		d.printEvent(ev)
	}
	d.step("done")
	return nil
}

func stopTalking(taskID string) func(client.Event) bool {
	return func(ev client.Event) bool {
		st, ok := ev.(client.StopTalkingEvent)
		return ok && st.TaskID == taskID
	}
}

// await prints the socket's events until one satisfies done.
func (d *demo) await(ctx context.Context, events <-chan client.Event, done func(client.Event) bool) error {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return errors.New("the realtime socket closed early")
			}
			d.printEvent(ev)
			if done(ev) {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (d *demo) printEvent(ev client.Event) {
	switch ev := ev.(type) {
	case client.StateEvent:
		if ev.Reason != "" {
			d.printf("event session.state_updated: %s (%s)", ev.State, ev.Reason)
		} else {
			d.printf("event session.state_updated: %s", ev.State)
		}
	case client.StartTalkingEvent:
		d.printf("event avatar_start_talking: task %s, %d ms", ev.TaskID, ev.Duration.Milliseconds())
	case client.StopTalkingEvent:
		d.printf("event avatar_stop_talking: task %s, %d ms, interrupted=%v", ev.TaskID, ev.Duration.Milliseconds(), ev.Interrupted)
	case client.ErrorEvent:
		d.printf("event error: %s", describe(ev.Err))
	case client.DisconnectedEvent:
		var ce *websocket.CloseError
		switch {
		case errors.As(ev.Err, &ce):
			d.printf("the server closed the socket: %d %s", ce.Code, ce.Text)
		default:
			d.printf("the socket ended: %v", ev.Err)
		}
		if ev.Reconnecting {
			d.printf("reconnecting")
		}
	}
}

func (d *demo) step(s string) { fmt.Fprintf(d.out, "==> %s\n", s) }

func (d *demo) printf(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

// failed names the call that failed, with the HTTP status of an answer.
func failed(call string, err error) error {
	if e, ok := sserrors.As(err); ok {
		return fmt.Errorf("%s: HTTP %d: %s", call, e.Status, describe(e))
	}
	return fmt.Errorf("%s: %w", call, err)
}

// describe prints an API error as code and message.
func describe(err error) string {
	if e, ok := sserrors.As(err); ok {
		return fmt.Sprintf("%d %s", e.Code, e.Message)
	}
	return err.Error()
}

// abbreviate shows the start of a secret only.
func abbreviate(s string) string {
	if len(s) <= 8 {
		return "…"
	}
	return s[:8] + "…"
}
