package observe_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/metrics"
	"github.com/streamsession/streamsession/observe"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/realtime"
	"github.com/streamsession/streamsession/session"
)

// client calls the Streaming API of an httptest server.
type client struct {
	t    *testing.T
	base string
}

// post sends body to path with the given header and decodes the data of a
// success into v; it returns the typed error of a failure.
func (c client) post(path string, hdr http.Header, body string, v any) error {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header = hdr.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	return sserrors.DecodeResponse(resp, v)
}

func randomHex(t *testing.T) string {
	var b [16]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return hex.EncodeToString(b[:])
}

// TestServerLog runs a whole session over real HTTP and a real realtime
// socket, with the log hooks of this package and the metrics hooks joined,
// plus refusals (a wrong API key, an unknown session, a wrong socket
// token). It checks the lines, in both formats, and that no API key, bearer
// token, access token or session id of the run appears in the log.
func TestServerLog(t *testing.T) {
	for _, hd := range handlers {
		t.Run(hd.name, func(t *testing.T) {
			ctx := context.Background()
			var buf syncBuffer
			logger := slog.New(hd.new(&buf))
			reg := prometheus.NewRegistry()
			met, err := metrics.New(reg, metrics.Config{})
			require.NoError(t, err)

			const apiKey = "sk-live-acme-3f9a1c7e5b2d4068"
			const wrongKey = "sk-live-nobody-000000000000"
			lim := limits.NewMemory(limits.MemoryConfig{})
			defer lim.Close()
			mgr, err := session.NewManager(session.Config{
				Limiter: lim, Avatars: testAvatars,
				Hooks: observe.JoinHooks(met.SessionHooks(), observe.SessionHooks(logger)),
			})
			require.NoError(t, err)
			defer mgr.Close(ctx)
			opened := make(chan struct{}, 1)
			closed := make(chan struct{}, 1)
			srv, err := server.New(server.Config{
				Manager:  mgr,
				Accounts: server.AccountsByKey{apiKey: {Name: "acme", Plan: limits.PaidPlan}},
				Avatars:  testAvatars,
				Hooks: observe.JoinServerHooks(met.ServerHooks(), observe.ServerHooks(logger), server.Hooks{
					SocketOpened: func(realtime.SocketInfo) { opened <- struct{}{} },
					SocketClosed: func(realtime.SocketInfo) { closed <- struct{}{} },
				}),
			})
			require.NoError(t, err)
			hs := httptest.NewServer(srv)
			defer hs.Close()
			defer srv.Close()
			c := client{t, hs.URL}
			withKey := http.Header{"X-Api-Key": {apiKey}}

			// The session: a bearer token, streaming.new, start, the socket, stop.
			var tok struct {
				Token string `json:"token"`
			}
			require.NoError(t, c.post(server.PathCreateToken, withKey, `{}`, &tok))
			var created struct {
				SessionID        string `json:"session_id"`
				AccessToken      string `json:"access_token"`
				RealtimeEndpoint string `json:"realtime_endpoint"`
			}
			require.NoError(t, c.post(server.PathNew, http.Header{"Authorization": {"Bearer " + tok.Token}}, `{}`, &created))
			id := created.SessionID
			require.NoError(t, c.post(server.PathStart, withKey, `{"session_id":"`+id+`"}`, nil))

			ws, resp, err := websocket.DefaultDialer.Dial(created.RealtimeEndpoint, nil)
			require.NoError(t, err)
			resp.Body.Close()
			<-opened // the Manager joined the session before the hook
			assert.Equal(t, 1.0, socketsOpen(t, reg))
			drained := make(chan struct{})
			go func() { // read until the server closes the socket
				defer close(drained)
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						return
					}
				}
			}()
			require.NoError(t, c.post(server.PathStop, withKey, `{"session_id":"`+id+`"}`, nil))
			<-drained
			<-closed
			ws.Close()
			assert.Equal(t, 0.0, socketsOpen(t, reg))

			// Refusals.
			unknown := randomHex(t)
			err = c.post(server.PathNew, http.Header{"X-Api-Key": {wrongKey}}, `{}`, nil)
			require.ErrorIs(t, err, sserrors.ErrUnauthorized)
			err = c.post(server.PathStop, withKey, `{"session_id":"`+unknown+`"}`, nil)
			require.ErrorIs(t, err, sserrors.ErrSessionNotFound)
			// session_token is the last parameter: this spoils the token.
			_, resp, err = websocket.DefaultDialer.Dial(created.RealtimeEndpoint+"x", nil)
			require.ErrorIs(t, err, websocket.ErrBadHandshake)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()

			require.NoError(t, srv.Close())
			require.NoError(t, mgr.Close(ctx))
			got := buf.String()

			// No secret and no id, whole or in part.
			half := created.AccessToken[len(created.AccessToken)/2:]
			for name, secret := range map[string]string{
				"API key": apiKey, "wrong API key": wrongKey, "bearer token": tok.Token,
				"access token": created.AccessToken, "half the access token": half,
				"session id": id, "half the session id": id[:16], "unknown session id": unknown,
			} {
				assert.NotContains(t, got, secret, name)
			}

			// The lines, in the JSON form whatever the format (the text
			// handler's lines are checked exactly by TestSessionLog).
			var lines []map[string]any
			if hd.name == "json" {
				for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
					var m map[string]any
					require.NoError(t, json.Unmarshal([]byte(l), &m), l)
					lines = append(lines, m)
				}
			} else {
				lines = parseText(t, got)
			}
			ref := sha12(id)
			var transitions []string
			count := map[string]int{}
			for _, l := range lines {
				msg := l["msg"].(string)
				count[msg]++
				switch msg {
				case observe.MsgTransition:
					assert.Equal(t, "acme", l["account"])
					assert.Equal(t, ref, l["session"])
					transitions = append(transitions, l["from"].(string)+">"+l["to"].(string))
				case observe.MsgSocketOpened, observe.MsgSocketClosed:
					assert.Equal(t, "acme", l["account"])
					assert.Equal(t, ref, l["session"])
				}
			}
			assert.Equal(t, []string{
				"unknown>new", "new>connecting", "connecting>connected", "connected>closing", "closing>closed",
			}, transitions)
			assert.Equal(t, 1, count[observe.MsgSocketOpened])
			assert.Equal(t, 1, count[observe.MsgSocketClosed])
			assert.Equal(t, 3, count[observe.MsgRequestRefused], got)
			assert.Contains(t, got, sha12(unknown), "the unknown session is named by its hash")
		})
	}
}

// socketsOpen reads streamsession_realtime_sockets from reg.
func socketsOpen(t *testing.T, reg prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "streamsession_realtime_sockets" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("streamsession_realtime_sockets not gathered")
	return 0
}

// parseText reads the key=value pairs of slog's text lines (values quoted
// with strconv.Quote when they need it); numbers stay strings, which is all
// the checks above compare.
func parseText(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		m := map[string]any{}
		for rest := l; rest != ""; {
			key, after, ok := strings.Cut(rest, "=")
			require.True(t, ok, l)
			var val string
			if strings.HasPrefix(after, `"`) {
				end := 1
				for ; end < len(after); end++ {
					if after[end] == '\\' {
						end++
						continue
					}
					if after[end] == '"' {
						break
					}
				}
				var err error
				val, err = strconv.Unquote(after[:end+1])
				require.NoError(t, err, l)
				after = after[end+1:]
			} else {
				val, after, _ = strings.Cut(after, " ")
				after = " " + after
			}
			m[key] = val
			rest = strings.TrimPrefix(after, " ")
		}
		out = append(out, m)
	}
	return out
}
