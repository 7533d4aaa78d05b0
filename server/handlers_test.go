package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/fsm"
	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/session"
)

// Exact failure bodies (the wire contract).
const (
	bodyUnauthorized = `{"code":400112,"message":"Unauthorized"}`
	bodyMissing      = `{"code":40001,"message":"Missing required input parameters"}`
	bodyInvalid      = `{"code":400175,"message":"Invalid parameter"}`
	bodyNotFound     = `{"code":10006,"message":"Session not found"}`
	bodyNoResource   = `{"code":40051,"message":"Resource is not found"}`
	bodyNull         = `{"code":100,"message":"success","data":null}`
)

var taskIDPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`)

// TestEnvelopesGolden walks a whole session with a bearer token and compares
// every answer byte for byte, with the random parts replaced by names.
func TestEnvelopesGolden(t *testing.T) {
	e := newEnv(t, nil)
	host := strings.TrimPrefix(e.http.URL, "http://")
	before := time.Now().Unix()

	r := e.post("key-acme", PathCreateToken, "{}")
	require.Equal(t, http.StatusOK, r.status)
	m := regexp.MustCompile(`^\{"error":null,"data":\{"token":"(sst_[A-Za-z0-9_-]{43})"\}\}$`).FindStringSubmatch(r.body)
	require.NotNil(t, m, r.body)
	token := m[1]
	auth := bearer(token)

	r = e.do(http.MethodPost, PathNew, auth, `{"avatar_id":"Wayne_20240711","quality":"high","version":"v2","video_encoding":"H264"}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	var c created
	e.data(r, &c)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Len(t, c.SessionID, 32, "128 bits, hex")

	var sock *socket
	var taskID string
	steps := []struct {
		name   string
		method string
		path   string
		body   string
		before func()
		status int
		want   string
	}{
		{name: "new", status: 200, want: `{"code":100,"message":"success","data":{"session_id":"<ID>","access_token":"<ACCESS>","realtime_endpoint":"ws://<HOST>/v1/ws/streaming.chat?session_id=<ID>&session_token=<ACCESS>","url":"ws://<HOST>/v1/ws/streaming.chat?session_id=<ID>&session_token=<ACCESS>","is_paid":true,"session_duration_limit":0}}`},
		{name: "task in new", method: "POST", path: PathTask, body: `{"session_id":"<ID>","text":"hi"}`, status: 400, want: `{"code":10001,"message":"Session state wrong: new"}`},
		{name: "ice in new", method: "POST", path: PathICE, body: `{"session_id":"<ID>","candidate":{"candidate":"a=1"}}`, status: 200, want: bodyNull},
		{name: "start", method: "POST", path: PathStart, body: `{"session_id":"<ID>","sdp":{"type":"answer","sdp":"v=0"}}`, status: 200, want: bodyNull},
		{name: "start twice", method: "POST", path: PathStart, body: `{"session_id":"<ID>"}`, status: 400, want: `{"code":10002,"message":"Session state wrong: connecting"}`},
		{name: "task in connecting", method: "POST", path: PathTask, body: `{"session_id":"<ID>","text":"hi"}`, status: 400, want: `{"code":10002,"message":"Session state wrong: connecting"}`},
		{name: "list", method: "GET", path: PathList, status: 200, want: `{"code":100,"message":"success","data":{"sessions":[{"session_id":"<ID>","status":"connecting","created_at":<TS>}]}}`},
		{name: "avatar.list", method: "GET", path: PathAvatarList, status: 200, want: `{"code":100,"message":"success","data":[{"avatar_id":"Wayne_20240711","default_voice":null,"is_public":true,"status":"ACTIVE"},{"avatar_id":"acme_private","default_voice":"voice-1","is_public":false,"status":"ACTIVE"},{"avatar_id":"retired","default_voice":null,"is_public":true,"status":"INACTIVE"}]}`},
		{name: "task", method: "POST", path: PathTask, body: `{"session_id":"<ID>","text":"Hello, world","task_type":"repeat","task_mode":"sync"}`, status: 200,
			before: func() {
				sock = e.open(c.RealtimeEndpoint)
				sock.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
			},
			want: `{"code":100,"message":"success","data":{"task_id":"<TASK>","duration_ms":770}}`},
		{name: "interrupt", method: "POST", path: PathInterrupt, body: `{"session_id":"<ID>"}`, status: 200, want: bodyNull},
		{name: "interrupt when silent", method: "POST", path: PathInterrupt, body: `{"session_id":"<ID>"}`, status: 200, want: bodyNull},
		{name: "keep_alive", method: "POST", path: PathKeepAlive, body: `{"session_id":"<ID>"}`, status: 200, want: bodyNull},
		{name: "start_listening", method: "POST", path: PathStartListening, body: `{"session_id":"<ID>"}`, status: 200, want: bodyNull},
		{name: "stop_listening", method: "POST", path: PathStopListening, body: `{"session_id":"<ID>"}`, status: 200, want: bodyNull},
		{name: "ice in connected", method: "POST", path: PathICE, body: `{"session_id":"<ID>","candidate":{}}`, status: 400, want: `{"code":10003,"message":"Session state wrong: connected"}`},
		{name: "stop", method: "POST", path: PathStop, body: `{"session_id":"<ID>"}`, status: 200, want: bodyNull},
		{name: "stop twice", method: "POST", path: PathStop, body: `{"session_id":"<ID>"}`, status: 400, want: `{"code":10005,"message":"Session state wrong: closed"}`},
		{name: "start when closed", method: "POST", path: PathStart, body: `{"session_id":"<ID>"}`, status: 400, want: `{"code":10005,"message":"Session state wrong: closed"}`},
		{name: "list after stop", method: "GET", path: PathList, status: 200, want: `{"code":100,"message":"success","data":{"sessions":[]}}`},
	}
	normalize := func(s string) string {
		s = strings.ReplaceAll(s, c.SessionID, "<ID>")
		s = strings.ReplaceAll(s, c.AccessToken, "<ACCESS>")
		s = strings.ReplaceAll(s, host, "<HOST>")
		s = regexp.MustCompile(`"created_at":(\d+)`).ReplaceAllStringFunc(s, func(m string) string {
			ts, err := strconv.ParseInt(strings.TrimPrefix(m, `"created_at":`), 10, 64)
			require.NoError(t, err)
			assert.True(t, ts >= before && ts <= time.Now().Unix(), "created_at %d is the creation's Unix second", ts)
			return `"created_at":<TS>`
		})
		if id := taskIDPattern.FindString(s); id != "" {
			taskID = id
			s = strings.ReplaceAll(s, id, "<TASK>")
		}
		return s
	}
	for _, step := range steps {
		if step.before != nil {
			step.before()
		}
		if step.path != "" {
			var body any
			if step.body != "" {
				body = strings.ReplaceAll(step.body, "<ID>", c.SessionID)
			}
			r = e.do(step.method, step.path, auth, body)
		}
		assert.Equal(t, step.status, r.status, step.name)
		assert.Equal(t, step.want, normalize(r.body), step.name)
		assert.Equal(t, "application/json", r.header.Get("Content-Type"), step.name)
	}
	// The socket saw the task, its interruption and the close.
	require.NotEmpty(t, taskID)
	sock.expect(`{"type":"avatar_start_talking","event_type":"avatar_start_talking","task_id":"` + taskID + `","duration_ms":770}`)
	sock.expect(`{"type":"avatar_stop_talking","event_type":"avatar_stop_talking","task_id":"` + taskID + `","duration_ms":0,"interrupted":true}`)
	sock.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closing","reason":"stop"}`)
	sock.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"closed","reason":"stop"}`)
	ce := sock.closeError()
	require.NotNil(t, ce)
	assert.Equal(t, 1000, ce.Code)
	assert.Equal(t, 0, e.lim.heldCount(), "the slot is free")
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newSession("key-acme")
	id := `{"session_id":"` + c.SessionID + `"}`
	creds := []struct {
		name string
		hdr  map[string]string
	}{
		{"none", nil},
		{"unknown key", key("nope")},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}},
		{"basic scheme", map[string]string{"Authorization": "Basic a2V5LWFjbWU6"}},
		{"unknown token", bearer("sst_unknown")},
		{"access token as bearer", bearer(c.AccessToken)},
	}
	calls := []struct {
		method, path, body string
	}{
		{"POST", PathCreateToken, "{}"},
		{"POST", PathNew, "{}"},
		{"POST", PathStart, id},
		{"POST", PathTask, `{"session_id":"` + c.SessionID + `","text":"x"}`},
		{"POST", PathStop, id},
		{"GET", PathList, ""},
		{"GET", PathAvatarList, ""},
	}
	for _, cr := range creds {
		for _, call := range calls {
			t.Run(cr.name+" "+call.path, func(t *testing.T) {
				var body any
				if call.body != "" {
					body = call.body
				}
				r := e.do(call.method, call.path, cr.hdr, body)
				assert.Equal(t, http.StatusUnauthorized, r.status)
				assert.Equal(t, bodyUnauthorized, r.body)
			})
		}
	}
	info, err := e.mgr.Get(context.Background(), "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.New, info.State, "refused calls change nothing")
	assert.Equal(t, 1, e.lim.heldCount())

	t.Run("a bearer token cannot mint a token", func(t *testing.T) {
		r := e.do("POST", PathCreateToken, bearer(e.mintToken("key-acme")), "{}")
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, bodyUnauthorized, r.body)
	})
}

func (e *env) mintToken(apiKey string) string {
	e.t.Helper()
	r := e.post(apiKey, PathCreateToken, "")
	m := regexp.MustCompile(`"token":"([^"]+)"`).FindStringSubmatch(r.body)
	require.NotNil(e.t, m, r.body)
	return m[1]
}

func TestBearerToken(t *testing.T) {
	e := newEnv(t, nil)
	token := e.mintToken("key-acme")
	other := e.newSession("key-acme") // same account, created with the key

	var c created
	e.data(e.do("POST", PathNew, bearer(token), "{}"), &c)
	named := func(id string) string { return `{"session_id":"` + id + `"}` }

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		want   string
	}{
		{"second new is refused", "POST", PathNew, "{}", 401, bodyUnauthorized},
		{"own session", "POST", PathStart, named(c.SessionID), 200, bodyNull},
		{"another session of the account", "POST", PathStart, named(other.SessionID), 401, bodyUnauthorized},
		{"an unknown session", "POST", PathStop, named("0123456789abcdef0123456789abcdef"), 401, bodyUnauthorized},
		{"missing session id", "POST", PathStop, "{}", 400, bodyMissing},
		{"list", "GET", PathList, "", 200, ""},
		{"avatar.list", "GET", PathAvatarList, "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := e.do(tt.method, tt.path, bearer(token), body)
			assert.Equal(t, tt.status, r.status, r.body)
			if tt.want != "" {
				assert.Equal(t, tt.want, r.body)
			}
		})
	}
	info, err := e.mgr.Get(context.Background(), "acme", other.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.New, info.State, "the other session was not started")

	t.Run("expires after an hour unused", func(t *testing.T) {
		e.clock.Advance(time.Hour - time.Second)
		r := e.do("GET", PathList, bearer(token), nil)
		require.Equal(t, http.StatusOK, r.status, "a use restarts the hour")
		e.clock.Advance(time.Hour - time.Second)
		r = e.do("GET", PathList, bearer(token), nil)
		require.Equal(t, http.StatusOK, r.status)
		e.clock.Advance(time.Hour)
		r = e.do("POST", PathStop, bearer(token), named(c.SessionID))
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Equal(t, bodyUnauthorized, r.body)
		r = e.post("key-acme", PathStop, named(c.SessionID))
		assert.Equal(t, http.StatusOK, r.status, "the API key still works")
	})

	t.Run("a failed new does not spend the token", func(t *testing.T) {
		tok := e.mintToken("key-limited")
		e.newSession("key-limited") // takes the plan's one slot
		r := e.do("POST", PathNew, bearer(tok), "{}")
		assert.Equal(t, http.StatusTooManyRequests, r.status)
		assert.Equal(t, `{"code":10007,"message":"Concurrent limit reached"}`, r.body)
		list := e.do("GET", PathList, key("key-limited"), nil)
		var l listResponse
		e.data(list, &l)
		require.Len(t, l.Sessions, 1)
		e.post("key-limited", PathStop, named(l.Sessions[0].SessionID))
		r = e.do("POST", PathNew, bearer(tok), "{}")
		assert.Equal(t, http.StatusOK, r.status, r.body)
	})
}

// TestBearerTokenExpiresWithItsSession runs a manager with a one-minute
// retention in a synctest bubble (fake time), calling the handler without a
// network.
func TestBearerTokenExpiresWithItsSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mgr, err := session.NewManager(session.Config{Limiter: newFakeLimiter(10), Avatars: testAvatars, Retention: time.Minute})
		require.NoError(t, err)
		defer mgr.Close(context.Background())
		srv, err := New(Config{Manager: mgr, Accounts: testAccts, Avatars: testAvatars})
		require.NoError(t, err)
		defer srv.Close()
		call := func(path string, hdr map[string]string, body string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, req)
			return w
		}
		w := call(PathCreateToken, key("key-acme"), "{}")
		m := regexp.MustCompile(`"token":"([^"]+)"`).FindStringSubmatch(w.Body.String())
		require.NotNil(t, m)
		token := m[1]
		w = call(PathNew, bearer(token), "{}")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		id := regexp.MustCompile(`"session_id":"([0-9a-f]+)"`).FindStringSubmatch(w.Body.String())[1]
		body := `{"session_id":"` + id + `"}`
		w = call(PathStop, bearer(token), body)
		require.Equal(t, http.StatusOK, w.Code)

		w = call(PathStart, bearer(token), body)
		assert.Equal(t, http.StatusBadRequest, w.Code)
		assert.Equal(t, `{"code":10005,"message":"Session state wrong: closed"}`, w.Body.String(), "addressable during retention")

		time.Sleep(2 * time.Minute) // fake time: the retention window ends
		synctest.Wait()
		w = call(PathStart, key("key-acme"), body)
		assert.Equal(t, bodyNotFound, w.Body.String(), "forgotten")
		w = call(PathStart, bearer(token), body)
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Equal(t, bodyUnauthorized, w.Body.String(), "the token expired with its session")
	})
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, nil)
	big := `{"avatar_id":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`
	r := e.post("key-acme", PathNew, big)
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
	assert.Equal(t, bodyInvalid, r.body)
	assert.Equal(t, 0, e.lim.heldCount(), "no session was created")

	c := e.newSession("key-acme")
	r = e.post("key-acme", PathStop, `{"session_id":"`+c.SessionID+`","pad":"`+strings.Repeat("x", DefaultMaxBodyBytes)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
	assert.Equal(t, bodyInvalid, r.body)
	info, err := e.mgr.Get(context.Background(), "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.New, info.State, "the session was not stopped")

	exact := `{"session_id":"` + c.SessionID + `","pad":"`
	exact += strings.Repeat("x", DefaultMaxBodyBytes-len(exact)-2) + `"}`
	require.Len(t, exact, DefaultMaxBodyBytes)
	r = e.post("key-acme", PathStart, exact)
	assert.Equal(t, http.StatusOK, r.status, "a body of exactly the limit is read")
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connecting("key-acme")
	id := c.SessionID
	tests := []struct {
		name string
		path string
		body string
		want string
	}{
		{"not JSON", PathStart, `{"session_id":`, bodyMissing},
		{"garbage", PathStart, `session_id=` + id, bodyMissing},
		{"an array", PathStart, `["` + id + `"]`, bodyMissing},
		{"null", PathStart, `null`, bodyMissing},
		{"trailing data", PathStart, `{"session_id":"` + id + `"} {}`, bodyMissing},
		{"missing session_id", PathStop, `{}`, bodyMissing},
		{"empty session_id", PathStop, `{"session_id":""}`, bodyMissing},
		{"empty body", PathStop, ``, bodyMissing},
		{"session_id of the wrong type", PathStop, `{"session_id":5}`, bodyInvalid},
		{"task without text", PathTask, `{"session_id":"` + id + `"}`, bodyMissing},
		{"task with blank text", PathTask, `{"session_id":"` + id + `","text":"  "}`, bodyMissing},
		{"task text of the wrong type", PathTask, `{"session_id":"` + id + `","text":5}`, bodyInvalid},
		{"unknown task_type", PathTask, `{"session_id":"` + id + `","text":"x","task_type":"sing"}`, bodyInvalid},
		{"unknown task_mode", PathTask, `{"session_id":"` + id + `","text":"x","task_mode":"later"}`, bodyInvalid},
		{"ice without candidate", PathICE, `{"session_id":"` + id + `"}`, bodyMissing},
		{"ice with a null candidate", PathICE, `{"session_id":"` + id + `","candidate":null}`, bodyMissing},
		{"new: idle 29", PathNew, `{"activity_idle_timeout":29}`, bodyInvalid},
		{"new: idle 3601", PathNew, `{"activity_idle_timeout":3601}`, bodyInvalid},
		{"new: idle 0", PathNew, `{"activity_idle_timeout":0}`, bodyInvalid},
		{"new: idle not an integer", PathNew, `{"activity_idle_timeout":30.5}`, bodyInvalid},
		{"new: idle a string", PathNew, `{"activity_idle_timeout":"60"}`, bodyInvalid},
		{"new: unknown quality", PathNew, `{"quality":"ultra"}`, bodyInvalid},
		{"new: quality a number", PathNew, `{"quality":1}`, bodyInvalid},
		{"new: unknown video_encoding", PathNew, `{"video_encoding":"H265"}`, bodyInvalid},
		{"new: voice rate too high", PathNew, `{"voice":{"rate":2}}`, bodyInvalid},
		{"new: unknown emotion", PathNew, `{"voice":{"emotion":"angry"}}`, bodyInvalid},
		{"new: voice not an object", PathNew, `{"voice":"v"}`, bodyInvalid},
		{"new: disable_idle_timeout a string", PathNew, `{"disable_idle_timeout":"yes"}`, bodyInvalid},
		{"new: not JSON", PathNew, `{"quality":"high"`, bodyMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.post("key-acme", tt.path, tt.body)
			assert.Equal(t, http.StatusBadRequest, r.status)
			assert.Equal(t, tt.want, r.body)
		})
	}
	info, err := e.mgr.Get(context.Background(), "acme", id)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connecting, info.State, "nothing changed")
	assert.Equal(t, 1, e.lim.heldCount(), "no session was created")

	t.Run("accepted values", func(t *testing.T) {
		for _, body := range []string{
			``,
			`{}`,
			`{"activity_idle_timeout":30}`,
			`{"activity_idle_timeout":3600,"disable_idle_timeout":true}`,
			`{"quality":"HIGH","video_encoding":"vp8","voice":{"voice_id":"v","rate":1.5,"emotion":"Excited"}}`,
			`{"avatar_name":"Wayne_20240711","knowledge_base":"kb","knowledge_base_id":"1","version":"v2"}`,
			`{"unknown_field":{"nested":[1,2,3]},"activity_idle_timeout":null}`,
		} {
			r := e.post("key-acme", PathNew, body)
			assert.Equal(t, http.StatusOK, r.status, "%s: %s", body, r.body)
		}
	})
}

func TestNewHonoursOptions(t *testing.T) {
	e := newEnv(t, nil)
	var c created
	e.data(e.post("key-acme", PathNew, `{"activity_idle_timeout":45,"disable_idle_timeout":true,"avatar_name":"acme_private"}`), &c)
	info, err := e.mgr.Get(context.Background(), "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, 45*time.Second, info.IdleTimeout)
	assert.True(t, info.DisableIdleTimeout)
	assert.Equal(t, "acme_private", info.AvatarID, "avatar_name is the legacy avatar_id")

	var trial created
	e.data(e.post("key-trial", PathNew, `{}`), &trial)
	assert.False(t, trial.IsPaid)
	assert.Equal(t, int64(600), trial.SessionDurationLimit)
}

func TestRealtimeEndpointURL(t *testing.T) {
	tests := []struct {
		name    string
		baseURL string
		header  map[string]string
		want    string
	}{
		{"from the request", "", nil, "ws://<HOST>/v1/ws/streaming.chat?session_id="},
		{"forwarded headers ignored", "", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}, "ws://<HOST>/v1/ws/streaming.chat?session_id="},
		{"configured https base", "https://api.example.com/prefix/", nil, "wss://api.example.com/prefix/v1/ws/streaming.chat?session_id="},
		{"configured ws base", "ws://10.0.0.1:9000", nil, "ws://10.0.0.1:9000/v1/ws/streaming.chat?session_id="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.BaseURL = tt.baseURL })
			hdr := key("key-acme")
			for k, v := range tt.header {
				hdr[k] = v
			}
			var c created
			e.data(e.do("POST", PathNew, hdr, "{}"), &c)
			want := strings.ReplaceAll(tt.want, "<HOST>", strings.TrimPrefix(e.http.URL, "http://")) + c.SessionID + "&session_token=" + c.AccessToken
			assert.Equal(t, want, c.RealtimeEndpoint)
			assert.Equal(t, want, c.URL)
		})
	}
	for _, bad := range []string{"not a url", "ftp://x", "/relative"} {
		_, err := New(Config{Manager: &session.Manager{}, Accounts: testAccts, Avatars: testAvatars, BaseURL: bad})
		assert.Error(t, err, bad)
	}
}

// TestTenancy: another account's session answers byte for byte what an
// unknown id answers, on every endpoint that names a session.
func TestTenancy(t *testing.T) {
	e := newEnv(t, nil)
	c, _ := e.connect("key-acme")
	unknown := "0123456789abcdef0123456789abcdef"
	for _, path := range []string{PathStart, PathICE, PathTask, PathInterrupt, PathStartListening, PathStopListening, PathKeepAlive, PathStop} {
		t.Run(path, func(t *testing.T) {
			body := func(id string) string {
				return `{"session_id":"` + id + `","text":"hello","candidate":{}}`
			}
			theirs := e.post("key-globex", path, body(c.SessionID))
			none := e.post("key-globex", path, body(unknown))
			assert.Equal(t, http.StatusNotFound, theirs.status)
			assert.Equal(t, bodyNotFound, theirs.body)
			assert.Equal(t, none.status, theirs.status)
			assert.Equal(t, none.body, theirs.body)
			theirs.header.Del("Date")
			none.header.Del("Date")
			assert.Equal(t, none.header, theirs.header)
		})
	}
	var l listResponse
	e.data(e.do("GET", PathList, key("key-globex"), nil), &l)
	assert.Empty(t, l.Sessions)
	info, err := e.mgr.Get(context.Background(), "acme", c.SessionID)
	require.NoError(t, err)
	assert.Equal(t, fsm.Connected, info.State)
}

func TestLimitsAndAvatars(t *testing.T) {
	tests := []struct {
		name       string
		capacity   int
		limiterErr error
		before     []string // API keys that create a session first
		apiKey     string
		body       string
		status     int
		want       string
		retryAfter string
	}{
		{name: "unknown avatar", apiKey: "key-acme", body: `{"avatar_id":"nobody"}`, status: 404, want: `{"code":10012,"message":"Avatar not found"}`},
		{name: "another account's private avatar", apiKey: "key-globex", body: `{"avatar_id":"acme_private"}`, status: 403, want: `{"code":10013,"message":"Avatar not allowed"}`},
		{name: "inactive avatar", apiKey: "key-acme", body: `{"avatar_id":"retired"}`, status: 403, want: `{"code":10013,"message":"Avatar not allowed"}`},
		{name: "trial quota used up", apiKey: "key-noquota", body: `{}`, status: 429, want: `{"code":10015,"message":"Trial API limit reached"}`},
		{name: "plan concurrency", before: []string{"key-limited"}, apiKey: "key-limited", body: `{}`, status: 429, want: `{"code":10007,"message":"Concurrent limit reached"}`},
		{name: "service capacity", capacity: 1, before: []string{"key-globex"}, apiKey: "key-acme", body: `{}`, status: 429, want: `{"code":10014,"message":"Session full"}`, retryAfter: "5"},
		{name: "limiter backend down", limiterErr: limits.ErrUnavailable, apiKey: "key-acme", body: `{}`, status: 503, want: `{"code":400558,"message":"API connection error"}`, retryAfter: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			if tt.capacity > 0 {
				e.lim.capacity = tt.capacity
			}
			for _, k := range tt.before {
				e.newSession(k)
			}
			held := e.lim.heldCount()
			e.lim.setErr(tt.limiterErr)
			r := e.post(tt.apiKey, PathNew, tt.body)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.want, r.body)
			assert.Equal(t, tt.retryAfter, r.header.Get("Retry-After"))
			assert.Equal(t, held, e.lim.heldCount(), "nothing taken")
			select {
			case ref := <-e.refused:
				assert.Equal(t, PathNew, ref.Endpoint)
				assert.Equal(t, tt.status, ref.Status)
				assert.Equal(t, testAccts[tt.apiKey], ref.Account)
				assert.Equal(t, sserrors.CodeOf(ref.Err), ref.Code)
			default:
				t.Fatal("the Refused hook was not called")
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		method, path string
		status       int
		allow        string
		want         string
	}{
		{"GET", "/v1/streaming.nope", 404, "", bodyNoResource},
		{"POST", "/", 404, "", bodyNoResource},
		{"POST", "/v1/streaming.new/", 404, "", bodyNoResource},
		{"GET", PathNew, 405, "POST", bodyNoResource},
		{"PUT", PathStop, 405, "POST", bodyNoResource},
		{"POST", PathList, 405, "GET", bodyNoResource},
		{"DELETE", PathAvatarList, 405, "GET", bodyNoResource},
		{"POST", PathRealtime, 405, "GET", bodyNoResource},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := e.do(tt.method, tt.path, key("key-acme"), "{}")
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.allow, r.header.Get("Allow"))
			assert.Equal(t, tt.want, r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
		})
	}
}

func TestListOrderAndFilter(t *testing.T) {
	e := newEnv(t, nil)
	a := e.newSession("key-acme")
	b := e.connecting("key-acme")
	c, _ := e.connect("key-acme")
	d := e.newSession("key-acme")
	require.Equal(t, 200, e.post("key-acme", PathStop, `{"session_id":"`+d.SessionID+`"}`).status)

	var l listResponse
	e.data(e.do("GET", PathList, key("key-acme"), nil), &l)
	got := map[string]string{}
	for _, s := range l.Sessions {
		got[s.SessionID] = s.Status
	}
	assert.Equal(t, map[string]string{a.SessionID: "new", b.SessionID: "connecting", c.SessionID: "connected"}, got)
	for i := 1; i < len(l.Sessions); i++ {
		assert.LessOrEqual(t, l.Sessions[i-1].CreatedAt, l.Sessions[i].CreatedAt)
	}
}
