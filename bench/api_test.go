package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
)

// apiClient calls the Streaming API of one server with one API key, over
// one keep-alive http.Client.
type apiClient struct {
	base   string
	apiKey string
	http   *http.Client
}

// newAPIClient returns a client whose transport keeps up to idle
// connections to the server alive.
func newAPIClient(base, apiKey string, idle int) *apiClient {
	tr := &http.Transport{MaxIdleConns: idle, MaxIdleConnsPerHost: idle, IdleConnTimeout: time.Minute}
	return &apiClient{base: base, apiKey: apiKey, http: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// close drops the client's idle connections.
func (c *apiClient) close() { c.http.CloseIdleConnections() }

// post sends body as JSON to path and decodes the success envelope's data
// into out (when not nil). A failure envelope or another status is an error.
func (c *apiClient) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", c.apiKey)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("POST %s: HTTP %d, body %q: %w", path, resp.StatusCode, raw, err)
	}
	if resp.StatusCode != http.StatusOK || env.Code != 100 {
		return fmt.Errorf("POST %s: HTTP %d, code %d %q", path, resp.StatusCode, env.Code, env.Message)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(env.Data, out)
}

// newSession is the data of streaming.new that the benchmarks use.
type newSession struct {
	SessionID        string `json:"session_id"`
	RealtimeEndpoint string `json:"realtime_endpoint"`
}

// startSession creates and starts a session (streaming.new then
// streaming.start): it is connecting, waiting for its socket.
func (c *apiClient) startSession(ctx context.Context) (newSession, error) {
	var s newSession
	if err := c.post(ctx, server.PathNew, map[string]any{}, &s); err != nil {
		return s, err
	}
	err := c.post(ctx, server.PathStart, map[string]string{"session_id": s.SessionID}, nil)
	return s, err
}

// realtimeMessage is the part of a realtime server message the benchmarks
// read.
type realtimeMessage struct {
	Type  string `json:"type"`
	State string `json:"state"`
}

// dialRealtime opens the session's realtime socket (connecting →
// connected) with d and returns it once the server has said connected.
func dialRealtime(ctx context.Context, d *websocket.Dialer, s newSession) (*websocket.Conn, error) {
	conn, resp, err := d.DialContext(ctx, s.RealtimeEndpoint, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial realtime: HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, err
	}
	for {
		var msg realtimeMessage
		if err := conn.ReadJSON(&msg); err != nil {
			_ = conn.Close()
			return nil, err
		}
		if msg.Type == realtime.TypeStateUpdated && msg.State == "connected" {
			return conn, nil
		}
	}
}
