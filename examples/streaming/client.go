package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// socketClosed is the client's own pseudo-event for the server's close frame.
const socketClosed = "socket closed"

type clientOptions struct {
	BaseURL string
	APIKey  string
	Text    string
}

// demoClient runs one session the way a HeyGen SDK does: a token from the
// API key, then every call with the token. It prints each step.
type demoClient struct {
	base  string
	out   io.Writer
	http  *http.Client
	auth  func(*http.Request)
	guard session.Guard
}

// runClient runs a whole session against a server and prints each step and
// event: create_token, avatar.list, new, a task refused by the guard, start,
// the socket, a task, agent.speak and agent.interrupt, stop.
func runClient(ctx context.Context, opts clientOptions, out io.Writer) error {
	c := &demoClient{base: strings.TrimRight(opts.BaseURL, "/"), out: out, http: &http.Client{Timeout: 30 * time.Second}}

	c.step("POST /v1/streaming.create_token with X-Api-Key")
	c.auth = func(r *http.Request) { r.Header.Set("X-Api-Key", opts.APIKey) }
	var tok struct {
		Token string `json:"token"`
	}
	if err := c.call(ctx, http.MethodPost, server.PathCreateToken, struct{}{}, &tok); err != nil {
		return err
	}
	c.printf("token %s (one streaming.new, then this session's calls)", abbreviate(tok.Token))
	c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok.Token) }

	c.step("GET /v1/streaming/avatar.list")
	var avatars []struct {
		AvatarID     string  `json:"avatar_id"`
		DefaultVoice *string `json:"default_voice"`
		IsPublic     bool    `json:"is_public"`
		Status       string  `json:"status"`
	}
	if err := c.call(ctx, http.MethodGet, server.PathAvatarList, nil, &avatars); err != nil {
		return err
	}
	for _, a := range avatars {
		c.printf("avatar %s public=%v status=%s", a.AvatarID, a.IsPublic, a.Status)
	}

	c.step("POST /v1/streaming.new {}")
	var created struct {
		SessionID            string `json:"session_id"`
		RealtimeEndpoint     string `json:"realtime_endpoint"`
		IsPaid               bool   `json:"is_paid"`
		SessionDurationLimit int    `json:"session_duration_limit"`
	}
	if err := c.call(ctx, http.MethodPost, server.PathNew, struct{}{}, &created); err != nil {
		return err
	}
	c.guard.Observe(fsm.New)
	c.printf("session %s: new (is_paid=%v, session_duration_limit=%ds)", created.SessionID, created.IsPaid, created.SessionDurationLimit)
	id := map[string]string{"session_id": created.SessionID}
	stopped := false
	defer func() {
		if !stopped { // leave nothing behind on an early return
			_ = c.call(context.WithoutCancel(ctx), http.MethodPost, server.PathStop, id, nil)
		}
	}()

	c.step("streaming.task before the session is connected")
	if err := c.guard.Check(fsm.CmdTask); err != nil {
		c.printf("the guard refuses it without a network call: %s", describe(err))
	}

	c.step("POST /v1/streaming.start")
	if err := c.call(ctx, http.MethodPost, server.PathStart, id, nil); err != nil {
		return err
	}
	c.guard.Observe(fsm.Connecting)
	c.printf("session: connecting")

	c.step("open the realtime socket (realtime_endpoint)")
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, created.RealtimeEndpoint, nil)
	if err != nil {
		return fmt.Errorf("realtime socket: %w", err)
	}
	defer ws.Close()
	events := make(chan realtime.ServerMessage, 64)
	go func() {
		defer close(events)
		for {
			var m realtime.ServerMessage
			if err := ws.ReadJSON(&m); err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					events <- realtime.ServerMessage{Type: socketClosed, Code: sserrors.Code(ce.Code), Message: ce.Text}
				}
				return
			}
			events <- m
		}
	}()
	if _, err := c.await(ctx, events, func(m realtime.ServerMessage) bool {
		return m.Type == realtime.TypeStateUpdated && m.State == "connected"
	}); err != nil {
		return err
	}

	c.step("POST /v1/streaming.task")
	if err := c.guard.Check(fsm.CmdTask); err != nil {
		return err
	}
	var task struct {
		TaskID     string `json:"task_id"`
		DurationMS int    `json:"duration_ms"`
	}
	if err := c.call(ctx, http.MethodPost, server.PathTask, map[string]string{"session_id": created.SessionID, "text": opts.Text}, &task); err != nil {
		return err
	}
	c.printf("task %s: the avatar speaks for %d ms", task.TaskID, task.DurationMS)
	if _, err := c.await(ctx, events, func(m realtime.ServerMessage) bool {
		return m.Type == realtime.TypeStopTalking && m.TaskID == task.TaskID
	}); err != nil {
		return err
	}

	c.step(`socket: {"type":"agent.speak"}, then {"type":"agent.interrupt"}`)
	if err := ws.WriteJSON(realtime.ClientMessage{Type: realtime.TypeSpeak, Text: strings.Repeat(opts.Text+" ", 4)}); err != nil {
		return err
	}
	if _, err := c.await(ctx, events, func(m realtime.ServerMessage) bool { return m.Type == realtime.TypeStartTalking }); err != nil {
		return err
	}
	if err := ws.WriteJSON(realtime.ClientMessage{Type: realtime.TypeInterrupt}); err != nil {
		return err
	}
	if _, err := c.await(ctx, events, func(m realtime.ServerMessage) bool { return m.Type == realtime.TypeStopTalking }); err != nil {
		return err
	}

	c.step("POST /v1/streaming.stop")
	if err := c.guard.Check(fsm.CmdStop); err != nil {
		return err
	}
	if err := c.call(ctx, http.MethodPost, server.PathStop, id, nil); err != nil {
		return err
	}
	stopped = true
	c.printf("stopped: the session is closed and its slot free")
	if _, err := c.await(ctx, events, func(m realtime.ServerMessage) bool {
		return m.Type == realtime.TypeStateUpdated && m.State == "closed"
	}); err != nil {
		return err
	}
	for m := range events { // until the server closes the socket
		c.printEvent(m)
	}
	c.step("done")
	return nil
}

// call sends one API request and decodes the success envelope's data into
// out; a failure is the typed error from sserrors.
func (c *demoClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := sserrors.FromResponse(resp)
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, describe(e))
	}
	return sserrors.DecodeResponse(resp, out)
}

// await prints the socket's events until one satisfies done.
func (c *demoClient) await(ctx context.Context, events <-chan realtime.ServerMessage, done func(realtime.ServerMessage) bool) (realtime.ServerMessage, error) {
	for {
		select {
		case m, ok := <-events:
			if !ok {
				return realtime.ServerMessage{}, errors.New("the realtime socket closed early")
			}
			c.printEvent(m)
			if done(m) {
				return m, nil
			}
		case <-ctx.Done():
			return realtime.ServerMessage{}, ctx.Err()
		}
	}
}

func (c *demoClient) printEvent(m realtime.ServerMessage) {
	switch m.Type {
	case realtime.TypeStateUpdated:
		if s, err := fsm.ParseState(m.State); err == nil {
			c.guard.Observe(s)
		}
		c.printf("event %s: %s", m.Type, m.State)
	case realtime.TypeStartTalking:
		c.printf("event %s: task %s, %d ms", m.Type, m.TaskID, m.DurationMS)
	case realtime.TypeStopTalking:
		c.printf("event %s: task %s, %d ms, interrupted=%v", m.Type, m.TaskID, m.DurationMS, m.Interrupted)
	case socketClosed:
		c.printf("the server closed the socket: %d %s", m.Code, m.Message)
	default:
		c.printf("event %s: %d %s", m.Type, m.Code, m.Message)
	}
}

func (c *demoClient) step(s string) { fmt.Fprintf(c.out, "==> %s\n", s) }

func (c *demoClient) printf(format string, args ...any) {
	fmt.Fprintf(c.out, "    "+format+"\n", args...)
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
