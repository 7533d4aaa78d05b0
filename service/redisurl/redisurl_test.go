package redisurl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pw is the password of the tables; no error or String may hold it.
const pw = "s3cr3t-PW"

func TestParseForms(t *testing.T) {
	type want struct {
		kind       Kind
		addrs      []string
		user, pass string
		db         int
		master     string
		sentUser   string
		sentPass   string
		tls        bool
		redacted   string
	}
	tests := []struct {
		in   string
		want want
	}{
		{"127.0.0.1:6379", want{kind: KindSingle, addrs: []string{"127.0.0.1:6379"}, redacted: "127.0.0.1:6379"}},
		{"redis-host:7000", want{kind: KindSingle, addrs: []string{"redis-host:7000"}, redacted: "redis-host:7000"}},
		{"[::1]:6380", want{kind: KindSingle, addrs: []string{"[::1]:6380"}, redacted: "[::1]:6380"}},
		{"redis://h:1", want{kind: KindSingle, addrs: []string{"h:1"}, redacted: "redis://h:1"}},
		{"redis://h", want{kind: KindSingle, addrs: []string{"h:6379"}, redacted: "redis://h"}},
		{"redis://user:" + pw + "@h:1/3", want{kind: KindSingle, addrs: []string{"h:1"}, user: "user", pass: pw, db: 3, redacted: "redis://user:xxxxx@h:1/3"}},
		{"redis://:" + pw + "@h:1", want{kind: KindSingle, addrs: []string{"h:1"}, pass: pw, redacted: "redis://:xxxxx@h:1"}},
		{"redis://user:p%40ss%2Fw@h:1", want{kind: KindSingle, addrs: []string{"h:1"}, user: "user", pass: "p@ss/w", redacted: "redis://user:xxxxx@h:1"}},
		{"redis://user:p@ss@h:1", want{kind: KindSingle, addrs: []string{"h:1"}, user: "user", pass: "p@ss", redacted: "redis://user:xxxxx@h:1"}},
		{"redis://h:1/2?dial_timeout=3s", want{kind: KindSingle, addrs: []string{"h:1"}, db: 2, redacted: "redis://h:1/2?dial_timeout=3s"}},
		{"rediss://u:" + pw + "@h:6380/1", want{kind: KindSingle, addrs: []string{"h:6380"}, user: "u", pass: pw, db: 1, tls: true, redacted: "rediss://u:xxxxx@h:6380/1"}},
		{"redis+sentinel://s1:26379,s2:26380,s3/mymaster", want{kind: KindSentinel, addrs: []string{"s1:26379", "s2:26380", "s3:6379"}, master: "mymaster", redacted: "redis+sentinel://s1:26379,s2:26380,s3/mymaster"}},
		{"redis+sentinel://u:" + pw + "@s1:26379,s2:26380/mymaster/4?sentinel_password=" + pw + "x", want{kind: KindSentinel, addrs: []string{"s1:26379", "s2:26380"}, user: "u", pass: pw, db: 4, master: "mymaster", sentPass: pw + "x", redacted: "redis+sentinel://u:xxxxx@s1:26379,s2:26380/mymaster/4?sentinel_password=xxxxx"}},
		{"rediss+sentinel://s1:26379/m?sentinel_username=su", want{kind: KindSentinel, addrs: []string{"s1:26379"}, master: "m", sentUser: "su", tls: true, redacted: "rediss+sentinel://s1:26379/m?sentinel_username=su"}},
		{"redis+cluster://u:" + pw + "@c1:7000,c2:7001,c3:7002", want{kind: KindCluster, addrs: []string{"c1:7000", "c2:7001", "c3:7002"}, user: "u", pass: pw, redacted: "redis+cluster://u:xxxxx@c1:7000,c2:7001,c3:7002"}},
		{"rediss+cluster://c1:7000/", want{kind: KindCluster, addrs: []string{"c1:7000"}, tls: true, redacted: "rediss+cluster://c1:7000/"}},
	}
	for _, tt := range tests {
		t.Run(Redacted(tt.in), func(t *testing.T) {
			c, err := Parse(tt.in, Options{})
			require.NoError(t, err)
			assert.Equal(t, tt.want.kind, c.Kind())
			assert.Equal(t, tt.want.addrs, c.Addrs())
			assert.Equal(t, tt.want.redacted, c.String())
			assert.NotContains(t, c.String(), pw)
			switch c.Kind() {
			case KindSingle:
				o := c.single
				assert.Equal(t, tt.want.user, o.Username)
				assert.Equal(t, tt.want.pass, o.Password)
				assert.Equal(t, tt.want.db, o.DB)
				assert.Equal(t, tt.want.tls, o.TLSConfig != nil)
				assert.True(t, o.ContextTimeoutEnabled)
			case KindSentinel:
				o := c.failover
				assert.Equal(t, tt.want.user, o.Username)
				assert.Equal(t, tt.want.pass, o.Password)
				assert.Equal(t, tt.want.sentUser, o.SentinelUsername)
				assert.Equal(t, tt.want.sentPass, o.SentinelPassword)
				assert.Equal(t, tt.want.db, o.DB)
				assert.Equal(t, tt.want.master, o.MasterName)
				assert.Equal(t, tt.want.tls, o.TLSConfig != nil)
				assert.True(t, o.ContextTimeoutEnabled)
			case KindCluster:
				o := c.cluster
				assert.Equal(t, tt.want.user, o.Username)
				assert.Equal(t, tt.want.pass, o.Password)
				assert.Equal(t, tt.want.tls, o.TLSConfig != nil)
				assert.True(t, o.ContextTimeoutEnabled)
			}
			client := c.NewClient()
			assert.NoError(t, client.Close())
		})
	}
}

// badURLs hold the password pw wherever a URL can carry it, so the test
// can check that no error repeats it.
var badURLs = []string{
	"",
	"localhost",
	"h:port",
	"h:99999",
	"ftp://u:" + pw + "@h:1",
	"redis://u:" + pw + "@h:1/x",
	"redis://u:" + pw + "@h:1/1/2",
	"redis://u:" + pw + "@h:notaport",
	"redis://u:" + pw + "@h1:1,h2:2",
	"redis://u:" + pw + "@h:1?nosuch=1",
	"redis://u:" + pw + "@h:1?dial_timeout=zz",
	"redis://u:" + pw + "@h:1?password=" + pw,
	"redis://h:1?password=" + pw,
	"redis://u:" + pw + "%zz@h:1",
	"redis://u:" + pw + "@h:1#frag",
	"redis://u:" + pw + "@,h:1",
	"redis+sentinel://u:" + pw + "@s1:1",
	"redis+sentinel://u:" + pw + "@s1:1/m/x",
	"redis+sentinel://u:" + pw + "@s1:1/m/1/2",
	"redis+sentinel://u:" + pw + "@s1:1/m?master_name=n",
	"redis+sentinel://u:" + pw + "@s1:1/m?nosuch=" + pw,
	"redis+sentinel://s1:1/m?sentinel_password=" + pw + "&bad=1",
	"redis+cluster://u:" + pw + "@c1:1/3",
	"redis+cluster://u:" + pw + "@c1:1?addr=c2:2",
	"redis+cluster://u:" + pw + "@c1:1?read_only=maybe",
	"rediss://u:" + pw + "@h:1?skip_verify=perhaps",
}

func TestParseRejects(t *testing.T) {
	for _, in := range badURLs {
		t.Run(Redacted(in), func(t *testing.T) {
			c, err := Parse(in, Options{})
			require.Error(t, err, "Parse(%q) = %v, want an error", Redacted(in), c)
			var e *Error
			require.True(t, errors.As(err, &e), "Parse error %T is not *Error", err)
			assert.NotContains(t, err.Error(), pw)
			assert.NotContains(t, e.URL, pw)
		})
	}
}

func TestPasswordSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(file, []byte(pw+"\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	t.Setenv("REDISURL_TEST_PW", pw)
	t.Setenv("REDISURL_TEST_EMPTY", "")

	c, err := Parse("redis://u@h:1", Options{PasswordFile: file})
	require.NoError(t, err)
	assert.Equal(t, pw, c.single.Password)
	assert.Equal(t, "u", c.single.Username)

	c, err = Parse("redis+sentinel://s:1/m", Options{PasswordEnv: "REDISURL_TEST_PW"})
	require.NoError(t, err)
	assert.Equal(t, pw, c.failover.Password)
	assert.Empty(t, c.failover.SentinelPassword)

	c, err = Parse("redis+cluster://c:1", Options{PasswordFile: file})
	require.NoError(t, err)
	assert.Equal(t, pw, c.cluster.Password)

	bad := []struct {
		name string
		in   string
		opt  Options
	}{
		{"url and file", "redis://u:" + pw + "@h:1", Options{PasswordFile: file}},
		{"url and env", "redis://u:" + pw + "@h:1", Options{PasswordEnv: "REDISURL_TEST_PW"}},
		{"file and env", "redis://h:1", Options{PasswordFile: file, PasswordEnv: "REDISURL_TEST_PW"}},
		{"missing file", "redis://h:1", Options{PasswordFile: filepath.Join(dir, "nosuch")}},
		{"empty file", "redis://h:1", Options{PasswordFile: empty}},
		{"unset env", "redis://h:1", Options{PasswordEnv: "REDISURL_TEST_UNSET_VARIABLE"}},
		{"empty env", "redis://h:1", Options{PasswordEnv: "REDISURL_TEST_EMPTY"}},
		{"CA without TLS", "redis://h:1", Options{CAFile: file}},
		{"CA not PEM", "rediss://h:1", Options{CAFile: file}},
		{"CA missing", "rediss://h:1", Options{CAFile: filepath.Join(dir, "nosuch")}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in, tt.opt)
			var e *Error
			require.True(t, errors.As(err, &e), "Parse(%q) error = %v, want *Error", Redacted(tt.in), err)
			assert.NotContains(t, err.Error(), pw)
		})
	}
}

func TestRedacted(t *testing.T) {
	tests := []struct{ in, want string }{
		{"h:1", "h:1"},
		{"u:" + pw + "@h:1", "xxxxx@h:1"},
		{"redis://u@h:1", "redis://u@h:1"},
		{"redis://u:" + pw + "@h:1/2?dial_timeout=1s&password=" + pw, "redis://u:xxxxx@h:1/2?dial_timeout=1s&password=xxxxx"},
		{"redis://u:a@b:" + pw + "@h:1", "redis://u:xxxxx@h:1"},
		{"redis+sentinel://s:1/m?SENTINEL_PASSWORD=" + pw, "redis+sentinel://s:1/m?SENTINEL_PASSWORD=xxxxx"},
	}
	for _, tt := range tests {
		got := Redacted(tt.in)
		assert.Equal(t, tt.want, got, "Redacted(%q)", tt.in)
		assert.NotContains(t, got, pw)
	}
}

func FuzzRedactedHidesPassword(f *testing.F) {
	f.Add("user", pw, "h:1/0")
	f.Add("", "a/b", "h")
	f.Add("u", "p@q", "s1:1,s2:2/m")
	f.Fuzz(func(t *testing.T, user, pass, rest string) {
		if len(pass) < 6 || strings.ContainsAny(user+pass, ":?#") || strings.Contains(rest, pass) || strings.Contains(user, pass) || strings.Contains("redis://xxxxx", pass) {
			t.Skip()
		}
		in := "redis://" + user + ":" + pass + "@" + strings.ReplaceAll(rest, "@", "")
		got := Redacted(in)
		if strings.Contains(got, pass) {
			t.Fatalf("Redacted(%q) = %q, holds the password", in, got)
		}
		if _, err := Parse(in, Options{}); err != nil && strings.Contains(err.Error(), pass) {
			t.Fatalf("Parse(%q) error %q holds the password", in, err)
		}
	})
}
