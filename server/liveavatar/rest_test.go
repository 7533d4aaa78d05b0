package liveavatar_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/liveavatar"
	"github.com/streamsession/streamsession/session"
)

// TestLifecycle runs one LITE session over REST and its socket: token
// (new), start (connecting), the socket (connected), stop (closing,
// closed), and the calls after it.
func TestLifecycle(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := client{t: t, base: n.httpServer()}

	id, token := c.token("key-acme", nil)
	assert.Regexp(t, `^[0-9a-f]{32}$`, id)
	assert.Equal(t, "new", c.get("key-acme", id).State)

	// The token: a JWT whose payload says the mode and names no account.
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var claims struct {
		SessionID string `json:"session_id"`
		StartData struct {
			Mode string `json:"mode"`
		} `json:"start_session_data"`
	}
	require.NoError(t, json.Unmarshal(payload, &claims))
	assert.Equal(t, "LITE", claims.StartData.Mode)
	assert.Equal(t, id, claims.SessionID)
	assert.NotContains(t, string(payload), "acme")

	st := c.start(token)
	assert.Equal(t, id, st.SessionID)
	assert.Nil(t, st.MaxSessionDuration, "the pro plan sets no duration limit")
	assert.Regexp(t, `^ws://127\.0\.0\.1:\d+/v1/sessions/`+id+`/ws\?credential=[A-Za-z0-9_-]+$`, st.WSURL)
	assert.Equal(t, "connecting", c.get("key-acme", id).State)

	ws, _, err := dialLite(t, st.WSURL)
	require.NoError(t, err)
	assert.Equal(t, event{Type: "session.state_updated", State: "connecting"}, strip(ws.next()))
	assert.Equal(t, event{Type: "session.state_updated", State: "connected"}, strip(ws.next()))
	assert.Equal(t, "connected", c.get("key-acme", id).State)

	c.call("POST", liveavatar.PathKeepAlive, token, nil).data(t, http.StatusOK, nil)
	c.call("POST", liveavatar.PathStop, token, map[string]any{"reason": "USER_DISCONNECTED"}).data(t, http.StatusOK, nil)
	assert.Equal(t, event{Type: "session.state_updated", State: "closing", Reason: "USER_DISCONNECTED"}, strip(ws.next()))
	assert.Equal(t, event{Type: "session.state_updated", State: "closed", Reason: "USER_DISCONNECTED"}, strip(ws.next()))
	code, reason := ws.closed()
	assert.Equal(t, 1000, code)
	assert.Equal(t, liveavatar.CloseSessionClosed, reason)

	got := c.get("key-acme", id)
	assert.Equal(t, "closed", got.State)
	require.NotNil(t, got.CloseReason)
	assert.Equal(t, "USER_DISCONNECTED", *got.CloseReason)

	// A repeated stop resolves (the web SDK stops again after the socket
	// closes); a keep-alive does not.
	a := c.call("POST", liveavatar.PathStop, token, nil)
	a.data(t, http.StatusOK, nil)
	assert.JSONEq(t, `{"code":1000,"data":null,"message":"Success"}`, a.Body)
	c.call("POST", liveavatar.PathKeepAlive, token, nil).refused(t, 400, 10005, "Session state wrong: closed")
	c.call("POST", liveavatar.PathStart, token, nil).refused(t, 400, 10005, "Session state wrong: closed")
}

// strip keeps the fields an assertion compares.
func strip(e event) event {
	return event{Type: e.Type, State: e.State, Reason: e.Reason, EventID: e.EventID}
}

// TestTokenValidation checks the 422 answers of POST /v1/sessions/token:
// FastAPI's {"detail":[…]}, and nothing created.
func TestTokenValidation(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := n.client()
	for _, tc := range []struct {
		name string
		body string
		want string
	}{
		{"empty body", ``,
			`{"detail":[{"loc":["body","mode"],"msg":"Field required","type":"missing"},{"loc":["body","avatar_id"],"msg":"Field required","type":"missing"}]}`},
		{"not an object", `[1]`,
			`{"detail":[{"loc":["body"],"msg":"JSON decode error: the body must be a JSON object","type":"json_invalid"}]}`},
		{"bad JSON", `{"mode":`,
			`{"detail":[{"loc":["body"],"msg":"JSON decode error: the body must be a JSON object","type":"json_invalid"}]}`},
		{"unknown mode", `{"mode":"lite","avatar_id":"a"}`,
			`{"detail":[{"loc":["body","mode"],"msg":"Input should be 'FULL' or 'LITE'","type":"enum"}]}`},
		{"avatar_id not a string", `{"mode":"LITE","avatar_id":7}`,
			`{"detail":[{"loc":["body","avatar_id"],"msg":"Input should be a valid string","type":"string_type"}]}`},
		{"FULL without avatar_persona", `{"mode":"FULL","avatar_id":"Wayne_20240711"}`,
			`{"detail":[{"loc":["body","avatar_persona"],"msg":"Field required","type":"missing"}]}`},
		{"FULL with a bad interactivity_type", `{"mode":"FULL","avatar_id":"a","avatar_persona":{},"interactivity_type":"TALK"}`,
			`{"detail":[{"loc":["body","interactivity_type"],"msg":"Input should be 'CONVERSATIONAL' or 'PUSH_TO_TALK'","type":"enum"}]}`},
		{"video quality", `{"mode":"LITE","avatar_id":"a","video_settings":{"quality":"ultra","encoding":"AV1"}}`,
			`{"detail":[{"loc":["body","video_settings","quality"],"msg":"Input should be 'very_high', 'high', 'medium' or 'low'","type":"enum"},{"loc":["body","video_settings","encoding"],"msg":"Input should be 'VP8' or 'H264'","type":"enum"}]}`},
		{"livekit_config not all three", `{"mode":"LITE","avatar_id":"a","livekit_config":{"livekit_url":"wss://x"}}`,
			`{"detail":[{"loc":["body","livekit_config","livekit_room"],"msg":"Field required","type":"missing"},{"loc":["body","livekit_config","livekit_client_token"],"msg":"Field required","type":"missing"}]}`},
		{"max_session_duration zero", `{"mode":"LITE","avatar_id":"a","max_session_duration":0}`,
			`{"detail":[{"loc":["body","max_session_duration"],"msg":"Input should be greater than 0","type":"greater_than"}]}`},
		{"max_session_duration text", `{"mode":"LITE","avatar_id":"a","max_session_duration":"60"}`,
			`{"detail":[{"loc":["body","max_session_duration"],"msg":"Input should be a valid integer","type":"int_type"}]}`},
		{"max_session_duration over a day", `{"mode":"LITE","avatar_id":"a","max_session_duration":9223372036854775807}`,
			`{"detail":[{"loc":["body","max_session_duration"],"msg":"Input should be less than or equal to 86400","type":"less_than_equal"}]}`},
		{"is_sandbox text", `{"mode":"LITE","avatar_id":"a","is_sandbox":"yes"}`,
			`{"detail":[{"loc":["body","is_sandbox"],"msg":"Input should be a valid boolean","type":"bool_type"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := c.call("POST", liveavatar.PathToken, "key-limited", tc.body)
			assert.Equal(t, http.StatusUnprocessableEntity, a.Status)
			assert.Equal(t, tc.want+"\n", a.Body)
		})
	}
	// Nothing was created: the one-session account still gets its session.
	c.token("key-limited", nil)
}

// TestTokenAccepted checks the bodies LiveAvatar's clients send.
func TestTokenAccepted(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := n.client()
	for name, body := range map[string]map[string]any{
		"web SDK backend": {"mode": "LITE", "avatar_id": "Wayne_20240711", "is_sandbox": false,
			"video_settings": map[string]any{"quality": "high", "encoding": "VP8"}},
		"python plugin": {"mode": "LITE", "avatar_id": "Wayne_20240711", "is_sandbox": true, "video_quality": "high",
			"livekit_config": map[string]any{"livekit_room": "r", "livekit_url": "wss://lk", "livekit_client_token": "t"}},
		"FULL": {"mode": "FULL", "avatar_id": "Wayne_20240711", "interactivity_type": "PUSH_TO_TALK",
			"avatar_persona": map[string]any{"voice_id": "v", "context_id": "c", "language": "en"}},
	} {
		t.Run(name, func(t *testing.T) {
			id, token := c.token("key-acme", body)
			assert.Equal(t, "new", c.get("key-acme", id).State)
			assert.Len(t, strings.Split(token, "."), 3)
		})
	}
}

// TestDurationLimit checks max_session_duration: the smaller of it, the
// plan's and the sandbox's minute, answered by start.
func TestDurationLimit(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := n.client()
	for _, tc := range []struct {
		name string
		key  string
		body map[string]any
		want int64
	}{
		{"asked", "key-acme", map[string]any{"max_session_duration": 120}, 120},
		{"sandbox", "key-acme", map[string]any{"is_sandbox": true, "max_session_duration": 120}, 60},
		{"trial plan", "key-trial", nil, 600},
		{"trial plan, less asked", "key-trial", map[string]any{"max_session_duration": 30}, 30},
		{"trial plan, more asked", "key-trial", map[string]any{"max_session_duration": 3600}, 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711"}
			for k, v := range tc.body {
				body[k] = v
			}
			_, token := c.token(tc.key, body)
			st := c.start(token)
			require.NotNil(t, st.MaxSessionDuration)
			assert.Equal(t, tc.want, *st.MaxSessionDuration)
			c.call("POST", liveavatar.PathStop, token, nil).data(t, http.StatusOK, nil)
		})
	}
}

// TestRefusals checks the refusals of the REST endpoints, each with its
// exact envelope, and that they change nothing.
func TestRefusals(t *testing.T) {
	n := newNode(t, nodeOptions{capacity: 3})
	c := n.client()
	id, token := c.token("key-acme", nil)
	otherID, otherToken := c.token("key-globex", nil)

	forged := func(tok string) string { // the payload of another token under this one's signature
		p, q := strings.Split(tok, "."), strings.Split(otherToken, ".")
		return p[0] + "." + q[1] + "." + p[2]
	}
	for _, tc := range []struct {
		name, method, path, auth string
		body                     any
		status, code             int
		message                  string
	}{
		{"token with no key", "POST", liveavatar.PathToken, "", nil, 401, 400112, "Unauthorized"},
		{"token with a wrong key", "POST", liveavatar.PathToken, "key-nobody", nil, 401, 400112, "Unauthorized"},
		{"token with a session token", "POST", liveavatar.PathToken, token, nil, 401, 400112, "Unauthorized"},
		{"start with an API key", "POST", liveavatar.PathStart, "key-acme", nil, 401, 400112, "Unauthorized"},
		{"start with a forged token", "POST", liveavatar.PathStart, forged(token), nil, 401, 400112, "Unauthorized"},
		{"start with a truncated token", "POST", liveavatar.PathStart, token[:len(token)-2], nil, 401, 400112, "Unauthorized"},
		{"start naming another session", "POST", liveavatar.PathStart, token, map[string]any{"session_id": otherID}, 401, 400112, "Unauthorized"},
		{"keep-alive in new", "POST", liveavatar.PathKeepAlive, token, nil, 400, 10001, "Session state wrong: new"},
		{"stop by key without session_id", "POST", liveavatar.PathStop, "key-acme", nil, 422, 0, ""},
		{"stop by key, another account's session", "POST", liveavatar.PathStop, "key-acme", map[string]any{"session_id": otherID}, 404, 10006, ""},
		{"stop with an unknown reason", "POST", liveavatar.PathStop, token, map[string]any{"reason": "BORED"}, 422, 0, ""},
		{"get another account's session", "GET", "/v1/sessions/" + otherID, "key-acme", nil, 404, 10006, ""},
		{"get another session with a token", "GET", "/v1/sessions/" + otherID, token, nil, 401, 400112, "Unauthorized"},
		{"unknown path", "GET", "/v1/sessions/" + id + "/nothing", "key-acme", nil, 404, 40051, ""},
		{"wrong method", "PUT", liveavatar.PathToken, "key-acme", nil, 405, 40051, ""},
		{"trial quota spent", "POST", liveavatar.PathToken, "key-noquota", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711"}, 429, 10015, ""},
		{"unknown avatar", "POST", liveavatar.PathToken, "key-acme", map[string]any{"mode": "LITE", "avatar_id": "nobody"}, 404, 10012, ""},
		{"inactive avatar", "POST", liveavatar.PathToken, "key-acme", map[string]any{"mode": "LITE", "avatar_id": "retired"}, 403, 10013, ""},
		{"another account's avatar", "POST", liveavatar.PathToken, "key-globex", map[string]any{"mode": "LITE", "avatar_id": "acme_private"}, 403, 10013, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := c.call(tc.method, tc.path, tc.auth, tc.body)
			if tc.status == 422 {
				assert.Equal(t, 422, a.Status, a.Body)
				assert.Contains(t, a.Body, `"detail"`)
				return
			}
			a.refused(t, tc.status, tc.code, tc.message)
		})
	}
	// Nothing changed.
	assert.Equal(t, "new", c.get("key-acme", id).State)
	assert.Equal(t, "new", c.get("key-globex", otherID).State)

	// Capacity (3 sessions on the node): the third token takes the last.
	c.token("key-acme", nil)
	a := c.call("POST", liveavatar.PathToken, "key-acme", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711"})
	a.refused(t, 429, 10014, "")
	assert.Equal(t, "5", a.Header.Get("Retry-After"))
}

// TestConcurrencyShared checks that plan concurrency answers 403/4003 and
// that both surfaces share the account's slots.
func TestConcurrencyShared(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := n.client()
	_, token := c.token("key-limited", nil)

	a := c.call("POST", liveavatar.PathToken, "key-limited", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711"})
	assert.Equal(t, http.StatusForbidden, a.Status)
	assert.Equal(t, `{"code":4003,"data":null,"message":"Session concurrency limit reached"}`+"\n", a.Body)

	// The Streaming API's streaming.new sees the same slot taken.
	b := c.call("POST", "/v1/streaming.new", "key-limited", map[string]any{})
	assert.Equal(t, 429, b.Status)
	assert.Contains(t, b.Body, `"code":10007`)

	// Stopping the LiveAvatar session frees it for the Streaming API.
	c.call("POST", liveavatar.PathStop, token, nil).data(t, http.StatusOK, nil)
	b = c.call("POST", "/v1/streaming.new", "key-limited", map[string]any{})
	require.Equal(t, 200, b.Status, b.Body)
	var created struct {
		Data struct {
			SessionID string `json:"session_id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(b.Body), &created))
	// ... and now LiveAvatar's token is refused, and its list shows the
	// Streaming API's session.
	c.call("POST", liveavatar.PathToken, "key-limited", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711"}).
		refused(t, 403, 4003, "Session concurrency limit reached")
	var list struct {
		Count   int      `json:"count"`
		Results []listed `json:"results"`
	}
	c.call("GET", "/v1/sessions?type=active", "key-limited", nil).data(t, 200, &list)
	require.Equal(t, 1, list.Count)
	assert.Equal(t, created.Data.SessionID, list.Results[0].ID)
	assert.Equal(t, "new", list.Results[0].State)
}

// TestFullMode checks that a FULL token is minted but its start refused
// clearly, and that the web SDK's stop after the failed start resolves and
// frees the slot.
func TestFullMode(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := n.client()
	id, token := c.token("key-limited", map[string]any{"mode": "FULL", "avatar_id": "Wayne_20240711", "avatar_persona": map[string]any{}})
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	require.NoError(t, err)
	assert.Contains(t, string(payload), `"start_session_data":{"mode":"FULL","is_sandbox":false}`)

	a := c.call("POST", liveavatar.PathStart, token, nil)
	assert.Equal(t, http.StatusNotImplemented, a.Status)
	assert.Equal(t, `{"code":4501,"data":null,"message":"FULL mode needs a LiveKit server, which this service does not run; mint a LITE token"}`+"\n", a.Body)
	assert.Equal(t, "new", c.get("key-limited", id).State)

	c.call("POST", liveavatar.PathStop, token, nil).data(t, http.StatusOK, nil)
	c.call("POST", liveavatar.PathStop, token, nil).data(t, http.StatusOK, nil)
	got := c.get("key-limited", id)
	assert.Equal(t, "closed", got.State)
	c.token("key-limited", nil) // the slot is free
}

// TestWrongState checks the state refusals of start and keep-alive.
func TestWrongState(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := n.client()
	_, token := c.token("key-acme", nil)
	c.start(token)
	c.call("POST", liveavatar.PathStart, token, nil).refused(t, 400, 10002, "Session state wrong: connecting")
	c.call("POST", liveavatar.PathKeepAlive, token, map[string]any{}).refused(t, 400, 10002, "Session state wrong: connecting")
}

// TestList checks GET /v1/sessions: both surfaces' sessions, pagination,
// validation, a session token's view.
func TestList(t *testing.T) {
	n := newNode(t, nodeOptions{})
	c := n.client()
	id1, token1 := c.token("key-acme", nil)
	b := c.call("POST", "/v1/streaming.new", "key-acme", map[string]any{})
	require.Equal(t, 200, b.Status, b.Body)
	var created struct {
		Data struct {
			SessionID string `json:"session_id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(b.Body), &created))
	id3, _ := c.token("key-acme", nil)
	c.token("key-globex", nil)

	type page struct {
		Count    int      `json:"count"`
		Results  []listed `json:"results"`
		Next     *string  `json:"next"`
		Previous *string  `json:"previous"`
	}
	var p page
	c.call("GET", "/v1/sessions?type=active", "key-acme", nil).data(t, 200, &p)
	assert.Equal(t, 3, p.Count)
	var ids []string
	for _, r := range p.Results {
		ids = append(ids, r.ID)
	}
	assert.Equal(t, []string{id1, created.Data.SessionID, id3}, ids, "oldest first, both surfaces")
	assert.Nil(t, p.Next)

	c.call("GET", "/v1/sessions?type=active&page=2&page_size=1", "key-acme", nil).data(t, 200, &p)
	require.Len(t, p.Results, 1)
	assert.Equal(t, created.Data.SessionID, p.Results[0].ID)
	require.NotNil(t, p.Next)
	require.NotNil(t, p.Previous)
	assert.Equal(t, "/v1/sessions?page=3&page_size=1&type=active", *p.Next)
	assert.Equal(t, "/v1/sessions?page=1&page_size=1&type=active", *p.Previous)

	// The Streaming API lists the LiveAvatar sessions too.
	s := c.call("GET", "/v1/streaming.list", "key-acme", nil)
	assert.Contains(t, s.Body, id1)
	assert.Contains(t, s.Body, id3)

	// A session token sees its own session only.
	c.call("GET", "/v1/sessions?type=active", token1, nil).data(t, 200, &p)
	require.Equal(t, 1, p.Count)
	assert.Equal(t, id1, p.Results[0].ID)

	c.call("GET", "/v1/sessions?type=historic", "key-acme", nil).data(t, 200, &p)
	assert.Equal(t, 0, p.Count)

	for q, want := range map[string]string{
		"":                           `{"detail":[{"loc":["query","type"],"msg":"Field required","type":"missing"}]}`,
		"?type=all":                  `{"detail":[{"loc":["query","type"],"msg":"Input should be 'active' or 'historic'","type":"enum"}]}`,
		"?type=active&page=0":        `{"detail":[{"loc":["query","page"],"msg":"Input should be greater than or equal to 1","type":"greater_than_equal"}]}`,
		"?type=active&page_size=101": `{"detail":[{"loc":["query","page_size"],"msg":"Input should be less than or equal to 100","type":"less_than_equal"}]}`,
		"?type=active&page=x":        `{"detail":[{"loc":["query","page"],"msg":"Input should be a valid integer, unable to parse string as an integer","type":"int_parsing"}]}`,
	} {
		a := c.call("GET", "/v1/sessions"+q, "key-acme", nil)
		assert.Equal(t, 422, a.Status, q)
		assert.Equal(t, want+"\n", a.Body, q)
	}
}

// TestCORS checks the web SDK's credentialed requests from an allowed
// origin.
func TestCORS(t *testing.T) {
	n := newNode(t, nodeOptions{socket: func(c *liveavatar.Config) { c.Origins = []string{"http://localhost:*"} }})
	pre := httptestRequest("OPTIONS", liveavatar.PathStart, map[string]string{
		"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
	rec := serve(n.mux, pre)
	assert.Equal(t, 204, rec.Code)
	assert.Equal(t, "http://localhost:3000", rec.Header().Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "true", rec.Header().Get("Access-Control-Allow-Credentials"))
	assert.Contains(t, rec.Header().Get("Access-Control-Allow-Headers"), "Authorization")

	other := serve(n.mux, httptestRequest("OPTIONS", liveavatar.PathStart, map[string]string{
		"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}))
	assert.Empty(t, other.Header().Get("Access-Control-Allow-Origin"))
}

// TestRateShared checks that LiveAvatar's calls take from the account's
// request budget, the Streaming API's.
func TestRateShared(t *testing.T) {
	n := newNode(t, nodeOptions{rate: func(a session.Account) server.RateLimit {
		if a.Plan.Name != proPlan.Name {
			return server.RateLimit{} // the budget follows the account's plan
		}
		return server.RateLimit{PerSecond: 0.001, Burst: 2}
	}})
	c := n.client()
	c.token("key-acme", nil)
	c.call("GET", "/v1/streaming.list", "key-acme", nil)
	a := c.call("POST", liveavatar.PathToken, "key-acme", map[string]any{"mode": "LITE", "avatar_id": "Wayne_20240711"})
	a.refused(t, 429, 400140, "Exceed rate limit")
	assert.NotEmpty(t, a.Header.Get("Retry-After"))
	var list struct {
		Count int `json:"count"`
	}
	n2 := c.call("GET", "/v1/sessions?type=active", "key-globex", nil)
	n2.data(t, 200, &list)
	assert.Equal(t, 0, list.Count, "another account's budget is its own")
}
