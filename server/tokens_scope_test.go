package server

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listed returns the session ids streaming.list answers with hdr.
func (e *env) listed(hdr map[string]string) []string {
	e.t.Helper()
	var l listResponse
	e.data(e.do(http.MethodGet, PathList, hdr, nil), &l)
	ids := make([]string, 0, len(l.Sessions))
	for _, s := range l.Sessions {
		ids = append(ids, s.SessionID)
	}
	return ids
}

// TestBearerTokenListsItsSessionAlone: streaming.list with a bearer token
// shows the session it created and no other; none before it has made one.
// The API key lists the whole account.
func TestBearerTokenListsItsSessionAlone(t *testing.T) {
	e := newEnv(t, nil)
	byKey := e.newSession("key-acme")
	token := e.mintToken("key-acme")
	assert.Empty(t, e.listed(bearer(token)), "an unspent token lists nothing")

	var mine created
	e.data(e.do(http.MethodPost, PathNew, bearer(token), `{}`), &mine)
	other := e.mintToken("key-acme")
	var theirs created
	e.data(e.do(http.MethodPost, PathNew, bearer(other), `{}`), &theirs)

	assert.Equal(t, []string{mine.SessionID}, e.listed(bearer(token)))
	assert.Equal(t, []string{theirs.SessionID}, e.listed(bearer(other)))
	assert.ElementsMatch(t, []string{byKey.SessionID, mine.SessionID, theirs.SessionID}, e.listed(key("key-acme")), "the API key sees the account")
}

// TestIdempotencyKeyIsScopedToTheBearerToken: an Idempotency-Key sent with a
// bearer token is that token's: another token (spent or not) and the API
// key sending the same key and body run their own call and never receive
// the stored answer; the token itself gets the replay.
func TestIdempotencyKeyIsScopedToTheBearerToken(t *testing.T) {
	e := newEnv(t, nil)
	with := func(token string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + token, IdempotencyHeader: "shared-key"}
	}
	owner := e.mintToken("key-acme")
	first := e.do(http.MethodPost, PathNew, with(owner), `{}`)
	var stored created
	e.data(first, &stored)

	unspent := e.mintToken("key-acme")
	r := e.do(http.MethodPost, PathNew, with(unspent), `{}`)
	var got created
	e.data(r, &got)
	assert.Empty(t, r.header.Get(ReplayedHeader), "not a replay")
	assert.NotEqual(t, stored.SessionID, got.SessionID, "the unspent token made its own session")
	assert.NotEqual(t, stored.AccessToken, got.AccessToken, "and never saw the stored access_token")

	r = e.do(http.MethodPost, PathNew, keyed("key-acme", "shared-key"), `{}`)
	var byKey created
	e.data(r, &byKey)
	assert.Empty(t, r.header.Get(ReplayedHeader))
	assert.NotEqual(t, stored.SessionID, byKey.SessionID, "the API key's key is another key")

	again := e.do(http.MethodPost, PathNew, with(owner), `{}`)
	require.Equal(t, http.StatusOK, again.status, again.body)
	assert.Equal(t, "true", again.header.Get(ReplayedHeader))
	assert.Equal(t, first.body, again.body, "the owner's retry replays byte for byte")

	r = e.do(http.MethodPost, PathNew, with(unspent), `{}`)
	assert.Equal(t, "true", r.header.Get(ReplayedHeader), "each token replays its own answer")
	e.data(r, &got)
	assert.NotEqual(t, stored.SessionID, got.SessionID)
	assert.Equal(t, 3, e.lim.heldCount(), "three calls, three sessions, no more")
}

// TestBearerTokenOpensItsSocketAlone: only the token that created a session
// (or the session's access_token) opens its socket; an unspent token or
// another session's token is refused before the upgrade and cannot replace
// the owner's connection.
func TestBearerTokenOpensItsSocketAlone(t *testing.T) {
	e := newEnv(t, nil)
	owner := e.mintToken("key-acme")
	var c created
	e.data(e.do(http.MethodPost, PathNew, bearer(owner), `{}`), &c)
	r := e.do(http.MethodPost, PathStart, bearer(owner), map[string]string{"session_id": c.SessionID})
	require.Equal(t, http.StatusOK, r.status, r.body)
	s := e.open(wsURL(e, c.SessionID, owner))
	s.expect(`{"type":"session.state_updated","event_type":"session.state_updated","state":"connected"}`)
	<-e.opened

	spentElsewhere := e.mintToken("key-acme")
	e.data(e.do(http.MethodPost, PathNew, bearer(spentElsewhere), `{}`), &created{})
	for name, tok := range map[string]string{"unspent": e.mintToken("key-acme"), "spent on another session": spentElsewhere} {
		_, resp, err := e.dial(wsURL(e, c.SessionID, tok), nil)
		require.Error(t, err, name)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, bodyUnauthorized, string(body), name)
	}
	select {
	case <-e.opened:
		t.Fatal("a refused token opened a socket")
	case <-e.closed:
		t.Fatal("the owner's socket was replaced")
	default:
	}
	s.send(`{"type":"agent.speak","text":"still mine"}`)
	assert.Equal(t, "avatar_start_talking", s.message().Type, "the owner's socket still serves")
}
