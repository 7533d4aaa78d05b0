// Package redisurl turns the value of a node's -redis setting into a
// redis.UniversalClient, using go-redis's own URL parsers and clients and
// adding only the glue between them.
//
// The accepted forms are:
//
//	host:port                                   one server, no auth, no TLS
//	redis://[user[:pass]@]host:port[/db]        one server (go-redis's ParseURL)
//	rediss://[user[:pass]@]host:port[/db]       the same over TLS
//	redis+sentinel://[user[:pass]@]h1:p1[,h2:p2…]/MASTER[/db]
//	                                            the master MASTER found through
//	                                            the Sentinels h1, h2… (go-redis's
//	                                            failover client)
//	redis+cluster://[user[:pass]@]h1:p1[,h2:p2…] a Redis Cluster reached through
//	                                            the seed nodes h1, h2… (go-redis's
//	                                            cluster client)
//
// rediss+sentinel:// and rediss+cluster:// are the last two over TLS. In
// every form user and pass are the data nodes' credentials (percent-encoded
// where they hold reserved characters); a Sentinel that asks for its own
// takes them from the query parameters sentinel_username and
// sentinel_password. Any other query parameter is go-redis's own
// (dial_timeout=3s, pool_size=20, …) and an unknown one is an error.
//
// Options give what a URL should not carry: a private CA for TLS, and the
// password read from a file or an environment variable. Redacted hides the
// password of a URL for logs; no error and no String of this package holds
// it.
package redisurl

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Kind is the topology a URL names. It is a plain value, safe to copy and
// to share between goroutines.
type Kind int

// The topologies, in the order of the package doc.
const (
	// KindUnknown is the zero value; Parse never returns it.
	KindUnknown Kind = iota
	// KindSingle is one Redis server (host:port, redis://, rediss://).
	KindSingle
	// KindSentinel is a master found through Redis Sentinel.
	KindSentinel
	// KindCluster is a Redis Cluster.
	KindCluster
)

// String returns the kind's name as the metrics and logs show it.
func (k Kind) String() string {
	switch k {
	case KindSingle:
		return "single"
	case KindSentinel:
		return "sentinel"
	case KindCluster:
		return "cluster"
	}
	return "unknown"
}

// Options are the settings of a Redis connection that stay out of its URL.
// The zero value adds nothing to the URL. Options is a plain value, safe to
// copy.
type Options struct {
	// CAFile is a PEM file of the certificate authorities a TLS URL
	// (rediss…) trusts instead of the system's. Setting it for a URL
	// without TLS is an error.
	CAFile string
	// PasswordFile is a file holding the data nodes' password (one
	// trailing newline is ignored). It may not be combined with a password
	// in the URL or with PasswordEnv.
	PasswordFile string
	// PasswordEnv is the name of an environment variable holding the data
	// nodes' password. It may not be combined with a password in the URL
	// or with PasswordFile, and the variable must be set and non-empty.
	PasswordEnv string
}

// Config is a parsed Redis URL with its options applied. Its String never
// holds the password. A Config is immutable after Parse and safe for
// concurrent use by multiple goroutines; every NewClient call makes a new
// client.
type Config struct {
	kind     Kind
	redacted string
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// Kind returns the topology the URL names.
func (c *Config) Kind() Kind { return c.kind }

// String returns the URL with its passwords replaced by "xxxxx", for logs.
func (c *Config) String() string { return c.redacted }

// Addrs returns the addresses the client dials first: the server, the
// Sentinels or the cluster's seed nodes.
func (c *Config) Addrs() []string {
	switch c.kind {
	case KindSingle:
		return []string{c.single.Addr}
	case KindSentinel:
		return append([]string(nil), c.failover.SentinelAddrs...)
	case KindCluster:
		return append([]string(nil), c.cluster.Addrs...)
	}
	return nil
}

// NewClient returns a new client for the URL: a *redis.Client for one
// server or a Sentinel master, a *redis.ClusterClient for a cluster. Its
// context deadlines bound socket reads (ContextTimeoutEnabled). The caller
// closes it.
func (c *Config) NewClient() redis.UniversalClient {
	switch c.kind {
	case KindSentinel:
		o := *c.failover
		o.SentinelAddrs = append([]string(nil), o.SentinelAddrs...)
		o.TLSConfig = cloneTLS(o.TLSConfig)
		return redis.NewFailoverClient(&o)
	case KindCluster:
		o := *c.cluster
		o.Addrs = append([]string(nil), o.Addrs...)
		o.TLSConfig = cloneTLS(o.TLSConfig)
		return redis.NewClusterClient(&o)
	default:
		o := *c.single
		o.TLSConfig = cloneTLS(o.TLSConfig)
		return redis.NewClient(&o)
	}
}

func cloneTLS(t *tls.Config) *tls.Config {
	if t == nil {
		return nil
	}
	return t.Clone()
}

// New parses s with opt and returns a new client for it (see Parse and
// Config.NewClient). The caller closes the client.
func New(s string, opt Options) (redis.UniversalClient, error) {
	c, err := Parse(s, opt)
	if err != nil {
		return nil, err
	}
	return c.NewClient(), nil
}

// Error is a Redis URL or option that cannot be used. Its message names the
// URL in its redacted form and what is wrong, and never holds a password.
// An Error is not modified after Parse returns it: safe to share.
type Error struct {
	// URL is the URL as Redacted shows it.
	URL string
	// Reason says what is wrong, with any password replaced by "xxxxx".
	Reason string
}

// Error returns "redisurl: URL: reason".
func (e *Error) Error() string {
	return "redisurl: " + e.URL + ": " + e.Reason
}

// Parse checks s and opt and returns the Config a client is built from. A
// bad URL or option returns an *Error; nothing is dialled.
func Parse(s string, opt Options) (*Config, error) {
	p := &parser{raw: s, redacted: Redacted(s)}
	c, err := p.parse(opt)
	// The secrets parsed are hidden wherever else the URL repeats them.
	redacted := p.scrub(p.redacted)
	if err != nil {
		return nil, &Error{URL: redacted, Reason: p.scrub(err.Error())}
	}
	c.redacted = redacted
	return c, nil
}

// parser keeps the secrets seen while parsing, so that an error built from
// go-redis's messages can be scrubbed of them.
type parser struct {
	raw      string
	redacted string
	secrets  []string
}

func (p *parser) secret(s string) {
	if s != "" {
		p.secrets = append(p.secrets, s, url.QueryEscape(s), url.PathEscape(s))
	}
}

// scrub replaces the raw URL and every secret in msg.
func (p *parser) scrub(msg string) string {
	if p.raw != "" && p.raw != p.redacted {
		msg = strings.ReplaceAll(msg, p.raw, p.redacted)
	}
	for _, s := range p.secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}

func (p *parser) parse(opt Options) (*Config, error) {
	s := strings.TrimSpace(p.raw)
	if s == "" {
		return nil, fmt.Errorf("empty Redis address")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		// host:port, as -redis always took.
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("want host:port or a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL")
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, fmt.Errorf("port %q is not a number from 0 to 65535", port)
		}
		scheme, rest = "redis", s
	}
	tlsOn := strings.HasPrefix(scheme, "rediss")
	base := "redis"
	if tlsOn {
		base = "rediss"
	}

	// Split rest into userinfo, hosts, path and query by hand: the
	// Sentinel and Cluster forms list hosts, which net/url does not take.
	// Authority ends at the first '/' or '?' after the last '@' before them.
	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return nil, fmt.Errorf("a fragment (#…) is not part of a Redis URL; percent-encode '#' in a password as %%23")
	}
	userinfo := ""
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		userinfo, rest = rest[:i], rest[i+1:]
	}
	hostlist, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hostlist, path = rest[:i], rest[i:]
	}
	user, pass, err := p.userinfo(userinfo)
	if err != nil {
		return nil, err
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("query: %v", err)
	}
	for _, k := range []string{"password", "sentinel_password"} {
		for _, v := range values[k] {
			p.secret(v)
		}
	}
	if values.Has("password") || values.Has("username") {
		return nil, fmt.Errorf("give the credentials before the host (user:pass@) or through a password file or variable, not as query parameters")
	}
	if pass, err = p.password(pass, opt); err != nil {
		return nil, err
	}
	hosts := strings.Split(hostlist, ",")
	for _, h := range hosts {
		if h == "" {
			return nil, fmt.Errorf("empty host in %q", hostlist)
		}
	}

	var c *Config
	switch scheme {
	case "redis", "rediss":
		if len(hosts) != 1 {
			return nil, fmt.Errorf("%s:// takes one host; use redis+sentinel:// or redis+cluster:// for several", scheme)
		}
		o, err := redis.ParseURL(goURL(base, hosts[0], path, values))
		if err != nil {
			return nil, err
		}
		o.Username, o.Password = user, pass
		o.ContextTimeoutEnabled = true
		c = &Config{kind: KindSingle, single: o}
	case "redis+sentinel", "rediss+sentinel":
		segs := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
		if len(segs) == 0 || len(segs) > 2 {
			return nil, fmt.Errorf("%s:// wants /MASTER or /MASTER/db after the Sentinels", scheme)
		}
		master, err := url.PathUnescape(segs[0])
		if err != nil || master == "" {
			return nil, fmt.Errorf("bad master name %q", segs[0])
		}
		sentUser, sentPass := values.Get("sentinel_username"), values.Get("sentinel_password")
		values.Del("sentinel_username")
		values.Del("sentinel_password")
		if values.Has("master_name") || values.Has("addr") {
			return nil, fmt.Errorf("give the master in the path and the Sentinels before it, not as master_name or addr")
		}
		values.Set("master_name", master)
		for _, h := range hosts[1:] {
			values.Add("addr", withPort(h))
		}
		dbPath := ""
		if len(segs) == 2 {
			dbPath = "/" + segs[1]
		}
		o, err := redis.ParseFailoverURL(goURL(base, hosts[0], dbPath, values))
		if err != nil {
			return nil, err
		}
		o.Username, o.Password = user, pass
		o.SentinelUsername, o.SentinelPassword = sentUser, sentPass
		o.ContextTimeoutEnabled = true
		c = &Config{kind: KindSentinel, failover: o}
	case "redis+cluster", "rediss+cluster":
		if path != "" && path != "/" {
			return nil, fmt.Errorf("%s:// takes no path: a cluster has only database 0", scheme)
		}
		if values.Has("addr") {
			return nil, fmt.Errorf("list the seed nodes before the path (h1:p1,h2:p2), not as addr")
		}
		for _, h := range hosts[1:] {
			values.Add("addr", withPort(h))
		}
		o, err := redis.ParseClusterURL(goURL(base, hosts[0], "", values))
		if err != nil {
			return nil, err
		}
		o.Username, o.Password = user, pass
		o.ContextTimeoutEnabled = true
		c = &Config{kind: KindCluster, cluster: o}
	default:
		return nil, fmt.Errorf("unknown scheme %q: want redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster", scheme)
	}
	if err := c.applyCA(opt.CAFile, tlsOn); err != nil {
		return nil, err
	}
	return c, nil
}

// userinfo splits and unescapes "user[:pass]".
func (p *parser) userinfo(s string) (user, pass string, err error) {
	if s == "" {
		return "", "", nil
	}
	u, pw, hasPass := strings.Cut(s, ":")
	p.secret(pw)
	if user, err = url.PathUnescape(u); err != nil {
		return "", "", fmt.Errorf("user name is not validly percent-encoded")
	}
	if hasPass {
		if pass, err = url.PathUnescape(pw); err != nil {
			return "", "", fmt.Errorf("password is not validly percent-encoded")
		}
		p.secret(pass)
	}
	return user, pass, nil
}

// password returns the data nodes' password: the URL's, or the one of
// PasswordFile or PasswordEnv, refusing more than one source.
func (p *parser) password(fromURL string, opt Options) (string, error) {
	sources := 0
	if fromURL != "" {
		sources++
	}
	if opt.PasswordFile != "" {
		sources++
	}
	if opt.PasswordEnv != "" {
		sources++
	}
	if sources > 1 {
		return "", fmt.Errorf("the password is given more than once (URL, password file, environment variable): give one")
	}
	switch {
	case opt.PasswordFile != "":
		b, err := os.ReadFile(opt.PasswordFile)
		if err != nil {
			// The path error names the file, never its content.
			return "", fmt.Errorf("password file: %v", err)
		}
		pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		p.secret(pw)
		if pw == "" {
			return "", fmt.Errorf("password file %s is empty", opt.PasswordFile)
		}
		return pw, nil
	case opt.PasswordEnv != "":
		pw := os.Getenv(opt.PasswordEnv)
		p.secret(pw)
		if pw == "" {
			return "", fmt.Errorf("environment variable %s is unset or empty", opt.PasswordEnv)
		}
		return pw, nil
	}
	return fromURL, nil
}

// applyCA makes a TLS URL trust the certificates of file instead of the
// system's.
func (c *Config) applyCA(file string, tlsOn bool) error {
	if file == "" {
		return nil
	}
	if !tlsOn {
		return fmt.Errorf("a CA file is given but the URL does not use TLS (use rediss…)")
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	var t *tls.Config
	switch c.kind {
	case KindSingle:
		t = c.single.TLSConfig
	case KindSentinel:
		t = c.failover.TLSConfig
	case KindCluster:
		t = c.cluster.TLSConfig
	}
	t.RootCAs = pool
	if t.MinVersion == 0 {
		t.MinVersion = tls.VersionTLS12
	}
	return nil
}

// goURL builds the single-host URL go-redis's parsers take, without
// credentials (they are set on the options afterwards, so go-redis's
// messages never see them).
func goURL(scheme, host, path string, values url.Values) string {
	u := scheme + "://" + host + path
	if q := values.Encode(); q != "" {
		u += "?" + q
	}
	return u
}

// withPort adds Redis's default port to a host without one, as go-redis
// does for the first host of a URL.
func withPort(h string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return h
	}
	return net.JoinHostPort(strings.Trim(h, "[]"), "6379")
}

// Redacted returns s with the password of its userinfo and the values of
// its password and sentinel_password query parameters replaced by "xxxxx",
// for logs. It works on strings that do not parse as URLs too, erring on
// the side of hiding: everything between the user name and the last '@'
// before the query is hidden.
func Redacted(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		// host:port has no userinfo, but a mistyped URL may.
		if i := strings.LastIndexByte(s, '@'); i >= 0 {
			return "xxxxx" + s[i:]
		}
		return s
	}
	query, hasQuery := "", false
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query, hasQuery = rest[:i], rest[i+1:], true
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		if u, _, hasPass := strings.Cut(rest[:i], ":"); hasPass {
			rest = u + ":xxxxx" + rest[i:]
		}
	}
	out := scheme + "://" + rest
	if hasQuery {
		parts := strings.Split(query, "&")
		for i, kv := range parts {
			k, _, _ := strings.Cut(kv, "=")
			switch strings.ToLower(k) {
			case "password", "sentinel_password":
				parts[i] = k + "=xxxxx"
			}
		}
		out += "?" + strings.Join(parts, "&")
	}
	return out
}
