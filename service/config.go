package service

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/streamsession/streamsession/limits"
	"github.com/streamsession/streamsession/media"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/session"
)

// DemoJSON is the built-in demo configuration, and the default of every key.
//
//go:embed demo.json
var DemoJSON []byte

// maxTokensPerAccount bounds max_tokens_per_account: a million outstanding
// tokens already hold about 200 MB of one node's memory (or Redis's).
const maxTokensPerAccount = 1_000_000

// maxSeconds bounds every duration in the file (one year), so that no value
// overflows a time.Duration.
const maxSeconds = 365 * 24 * 3600

// Config is a node's configuration: the file's keys, parsed and validated,
// and the settings of the command line that are not in the file. It is a
// plain value; [New] does not modify it.
type Config struct {
	// Capacity is the number of open sessions the whole service allows.
	Capacity int
	// JoinTimeout closes a session not yet connected that long after its
	// creation.
	JoinTimeout time.Duration
	// ClosedRetention is how long a closed session stays addressable.
	ClosedRetention time.Duration
	// BodyReadTimeout bounds the reading of a request's body.
	BodyReadTimeout time.Duration
	// CORSOrigins are the browser origins allowed (server.Config.Origins).
	CORSOrigins []string
	// IdempotencyTTL is how long streaming.new keeps an Idempotency-Key.
	IdempotencyTTL time.Duration
	// Plans by name. Each carries its limits: concurrency, minutes,
	// duration, request budget (RequestsPerSecond, RequestBurst) and bearer
	// tokens (MaxTokens).
	Plans map[string]limits.Plan
	// Accounts in file order.
	Accounts []Account
	// Avatars in file order.
	Avatars session.Avatars
	// MaxClosedPerAccount bounds the closed sessions of one account kept
	// for their retention window (max_closed_per_account); past it the
	// oldest are forgotten (10006). Negative means no bound.
	MaxClosedPerAccount int
	// IdempotencyMaxKeysPerAccount bounds the stored answers of
	// streaming.new of one account (idempotency_max_keys_per_account).
	IdempotencyMaxKeysPerAccount int
	// MaxConnections caps the open connections of the API listener
	// (max_connections); 0 means server.DefaultMaxConnections().
	MaxConnections int
	// PublicURL is the public base URL of the node ("https://api.example.com",
	// public_url): realtime_endpoint, url and LiveAvatar's ws_url are built
	// from it, never from a request's Host. Empty: the listen address.
	PublicURL string
	// AdminAddr, when set, serves /healthz, /readyz and /metrics on a
	// listener of their own (admin_addr), and /metrics no longer beside
	// the API.
	AdminAddr string
	// Media serves the sessions' avatar over WebRTC (the media object).
	Media MediaConfig

	// The settings below are not read from the file: the command line (or
	// an embedder) sets them.

	// Redis, when its Addr is set, puts the limits, the sessions, the
	// tokens, the idempotent answers, the request budgets and the speech
	// relay in that Redis: the node is one of a service. Empty: one node in
	// memory.
	Redis RedisConfig
	// Secret keys the access and bearer tokens and seals the idempotent
	// answers kept in Redis (16 bytes or more, the same on every node).
	// Nil: alone a random one, with Redis one agreed through it.
	Secret []byte
	// MetricsAddr is the older name of AdminAddr (-metrics-addr): used
	// when AdminAddr is empty; setting both to different addresses is an
	// error of New.
	MetricsAddr string
	// Shutdown bounds the end of a node run by [Node.Serve].
	Shutdown ShutdownConfig

	// demo is set by [Demo]: the configuration's API keys are public.
	demo bool
}

// MediaConfig is the media object of the file: the WebRTC peers of the
// HeyGen v1 flow (package media). A file without it serves no media; the
// demo configuration turns it on. It is a plain value.
type MediaConfig struct {
	// Enabled makes streaming.new (without version, or "v1") answer an
	// offer, and a start with an answer connect by media (enabled).
	Enabled bool
	// UDPAddr is the one UDP address every peer shares (udp); the default
	// is media.DefaultUDPAddr, loopback only.
	UDPAddr string
	// PublicIP is the address put in the server's candidates in place of
	// UDPAddr's, for a node behind a 1:1 NAT (public_ip).
	PublicIP string
	// ICEServers are the STUN and TURN servers handed to clients as
	// ice_servers2 (ice_servers).
	ICEServers []media.ICEServer
	// NodeURL is this node's base URL as the other nodes reach it
	// (node_url), required with Redis: another node forwards a session's
	// start and candidates there.
	NodeURL string
}

// RedisConfig is where a node keeps its shared state. It is a plain value.
type RedisConfig struct {
	// Addr is the Redis address: host:port or a URL of package
	// redisurl (redis://, rediss://, redis+sentinel://, redis+cluster://);
	// empty means one node in memory.
	Addr string
	// Prefix is the hash tag of every key; the default is "streamsession".
	Prefix string
	// CAFile is a PEM file of the authorities a rediss:// URL trusts.
	CAFile string
	// PasswordFile holds the Redis password; without it the environment
	// variable PasswordEnv (STREAMSESSION_REDIS_PASSWORD) is read when set.
	PasswordFile string
	// WaitReplicas, when positive, makes the last write of a session's
	// creation and of its end wait (Redis WAIT) until that many replicas
	// hold it (redis_wait_replicas).
	WaitReplicas int
	// LeaseTTL is the limiter's lease lifetime; zero takes redislimiter's
	// default (30 s).
	LeaseTTL time.Duration
	// RequestTimeout bounds each API request's work on Redis; zero means
	// DefaultRequestTimeout. A call that Redis does not answer in time gets
	// 503/400558 with a Retry-After.
	RequestTimeout time.Duration
}

// ShutdownConfig bounds the end of a node. The zero value takes the
// defaults. It is a plain value.
type ShutdownConfig struct {
	// DrainTimeout bounds the whole shutdown: the node has stopped within
	// it. Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// RequestGrace is how long a request in flight when the listener stops
	// may take to finish before its connection is closed. Zero means
	// DefaultRequestGrace.
	RequestGrace time.Duration
	// DrainDelay is how long a draining node (with Redis) keeps serving
	// HTTP after /readyz turned 503, so that load balancers take it out of
	// rotation first; at most half of DrainTimeout. Zero means none.
	DrainDelay time.Duration
}

// The defaults of the shutdown and of Redis requests.
const (
	// DefaultDrainTimeout is the default ShutdownConfig.DrainTimeout.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultRequestGrace is the default ShutdownConfig.RequestGrace.
	DefaultRequestGrace = 5 * time.Second
	// DefaultDrainDelay is the drain delay the command suggests (its
	// -drain-delay default): long enough for a load balancer's health check.
	DefaultDrainDelay = 5 * time.Second
	// DefaultRequestTimeout is the default RedisConfig.RequestTimeout.
	DefaultRequestTimeout = 10 * time.Second
)

func (s ShutdownConfig) withDefaults() ShutdownConfig {
	if s.DrainTimeout <= 0 {
		s.DrainTimeout = DefaultDrainTimeout
	}
	if s.RequestGrace <= 0 {
		s.RequestGrace = DefaultRequestGrace
	}
	s.DrainDelay = min(max(s.DrainDelay, 0), s.DrainTimeout/2)
	return s
}

// adminAddr is the address of the admin endpoints: AdminAddr, or the
// older MetricsAddr.
func (c *Config) adminAddr() (string, error) {
	switch {
	case c.AdminAddr == "":
		return c.MetricsAddr, nil
	case c.MetricsAddr == "" || c.MetricsAddr == c.AdminAddr:
		return c.AdminAddr, nil
	default:
		return "", fmt.Errorf("config: admin_addr %q and -metrics-addr %q differ; -metrics-addr is the older name of the same listener", c.AdminAddr, c.MetricsAddr)
	}
}

// IsDemo reports whether c is the built-in demo configuration (from
// [Demo]), whose API keys are public and may be shown.
func (c *Config) IsDemo() bool { return c.demo }

// Account is one account of the file. It is a plain value.
type Account struct {
	APIKey string
	Name   string
	Plan   limits.Plan
}

// The JSON shapes. Pointers tell a missing key from a zero value.
type (
	fileJSON struct {
		Capacity               *int                `json:"capacity"`
		JoinTimeoutSeconds     *int                `json:"join_timeout_seconds"`
		ClosedRetentionSeconds *int                `json:"closed_retention_seconds"`
		BodyReadTimeoutSeconds *int                `json:"body_read_timeout_seconds"`
		CORSOrigins            *[]string           `json:"cors_origins"`
		IdempotencyTTLSeconds  *int                `json:"idempotency_ttl_seconds"`
		Plans                  map[string]planJSON `json:"plans"`
		Accounts               []accountJSON       `json:"accounts"`
		Avatars                []avatarJSON        `json:"avatars"`

		MaxClosedPerAccount          *int       `json:"max_closed_per_account"`
		IdempotencyMaxKeysPerAccount *int       `json:"idempotency_max_keys_per_account"`
		MaxConnections               *int       `json:"max_connections"`
		RedisWaitReplicas            *int       `json:"redis_wait_replicas"`
		PublicURL                    *string    `json:"public_url"`
		AdminAddr                    *string    `json:"admin_addr"`
		Media                        *mediaJSON `json:"media"`
	}
	mediaJSON struct {
		Enabled    *bool           `json:"enabled"`
		UDP        *string         `json:"udp"`
		PublicIP   *string         `json:"public_ip"`
		ICEServers []iceServerJSON `json:"ice_servers"`
		NodeURL    *string         `json:"node_url"`
	}
	iceServerJSON struct {
		URLs       []string `json:"urls"`
		Username   string   `json:"username"`
		Credential string   `json:"credential"`
	}
	planJSON struct {
		MaxConcurrent        *int  `json:"max_concurrent"`
		Trial                *bool `json:"trial"`
		MonthlyMinutes       *int  `json:"monthly_minutes"`
		SessionDurationLimit *int  `json:"session_duration_limit"`
		MaxTokensPerAccount  *int  `json:"max_tokens_per_account"`

		RequestsPerSecond *float64 `json:"requests_per_second"`
		Burst             *int     `json:"burst"`
	}
	accountJSON struct {
		APIKey *string `json:"api_key"`
		Name   *string `json:"name"`
		Plan   *string `json:"plan"`
	}
	avatarJSON struct {
		AvatarID     *string `json:"avatar_id"`
		Public       *bool   `json:"public"`
		Status       *string `json:"status"`
		Default      *bool   `json:"default"`
		Owner        *string `json:"owner"`
		DefaultVoice *string `json:"default_voice"`
	}
)

// Demo returns the built-in demo configuration (DemoJSON).
func Demo() *Config {
	c, err := Parse(DemoJSON)
	if err != nil {
		panic("config: the embedded demo.json is invalid: " + err.Error()) // a build defect; tests catch it
	}
	c.demo = true
	return c
}

// Load reads and parses the file at path; errors name the file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a configuration (see the package doc). It
// never panics.
func Parse(data []byte) (*Config, error) {
	var f fileJSON
	if err := decodeStrict(data, &f); err != nil {
		return nil, err
	}
	var demo fileJSON
	if err := decodeStrict(DemoJSON, &demo); err != nil {
		return nil, err
	}
	if f.Capacity == nil {
		f.Capacity = demo.Capacity
	}
	if f.JoinTimeoutSeconds == nil {
		f.JoinTimeoutSeconds = demo.JoinTimeoutSeconds
	}
	if f.ClosedRetentionSeconds == nil {
		f.ClosedRetentionSeconds = demo.ClosedRetentionSeconds
	}
	if f.BodyReadTimeoutSeconds == nil {
		f.BodyReadTimeoutSeconds = demo.BodyReadTimeoutSeconds
	}
	if f.CORSOrigins == nil {
		f.CORSOrigins = demo.CORSOrigins
	}
	if f.IdempotencyTTLSeconds == nil {
		f.IdempotencyTTLSeconds = demo.IdempotencyTTLSeconds
	}
	if f.Plans == nil {
		f.Plans = demo.Plans
	}
	if f.Accounts == nil {
		f.Accounts = demo.Accounts
	}
	if f.Avatars == nil {
		// The demo's avatars, less those owned by an account the file does
		// not have.
		names := make(map[string]bool)
		for _, a := range f.Accounts {
			if a.Name != nil {
				names[*a.Name] = true
			}
		}
		for _, a := range demo.Avatars {
			if a.Owner == nil || names[*a.Owner] {
				f.Avatars = append(f.Avatars, a)
			}
		}
	}
	return f.resolve()
}

// decodeStrict decodes one JSON object, refusing unknown keys and trailing
// data, with messages that name the key.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return errors.New("config: the configuration must be a JSON object")
	}
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return fmt.Errorf("config: %s: a JSON %s is not a valid value", typeErr.Field, typeErr.Value)
		}
		if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("config: unknown key %s", msg)
		}
		return fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return errors.New("config: data after the configuration object")
	}
	return nil
}

func (f *fileJSON) resolve() (*Config, error) {
	c := &Config{Plans: make(map[string]limits.Plan)}
	var err error
	if c.Capacity, err = between("capacity", *f.Capacity, 1, 1<<31-1); err != nil {
		return nil, err
	}
	join, err := between("join_timeout_seconds", *f.JoinTimeoutSeconds, 1, maxSeconds)
	if err != nil {
		return nil, err
	}
	retention, err := between("closed_retention_seconds", *f.ClosedRetentionSeconds, 1, maxSeconds)
	if err != nil {
		return nil, err
	}
	idem, err := between("idempotency_ttl_seconds", *f.IdempotencyTTLSeconds, 1, maxSeconds)
	if err != nil {
		return nil, err
	}
	c.IdempotencyTTL = time.Duration(idem) * time.Second
	c.JoinTimeout = time.Duration(join) * time.Second
	c.ClosedRetention = time.Duration(retention) * time.Second
	bodyTimeout, err := between("body_read_timeout_seconds", *f.BodyReadTimeoutSeconds, 1, maxSeconds)
	if err != nil {
		return nil, err
	}
	c.BodyReadTimeout = time.Duration(bodyTimeout) * time.Second
	c.CORSOrigins = append([]string{}, *f.CORSOrigins...)
	if err := f.resolveNode(c); err != nil {
		return nil, err
	}
	if _, err := server.NewOriginPolicy(c.CORSOrigins); err != nil {
		return nil, fmt.Errorf("config: cors_origins%w", err)
	}

	for name, p := range f.Plans {
		plan, err := p.resolve(name)
		if err != nil {
			return nil, err
		}
		c.Plans[name] = plan
	}

	keys, names := make(map[string]bool), make(map[string]bool)
	for i, a := range f.Accounts {
		key := fmt.Sprintf("accounts[%d]", i)
		if a.APIKey == nil || *a.APIKey == "" {
			return nil, fmt.Errorf("config: %s.api_key: required", key)
		}
		if a.Name == nil || *a.Name == "" {
			return nil, fmt.Errorf("config: %s.name: required", key)
		}
		if keys[*a.APIKey] {
			return nil, fmt.Errorf("config: %s.api_key: used by an earlier account", key)
		}
		if names[*a.Name] {
			return nil, fmt.Errorf("config: %s.name: %q is used by an earlier account", key, *a.Name)
		}
		keys[*a.APIKey], names[*a.Name] = true, true
		planName := "trial"
		if a.Plan != nil {
			planName = *a.Plan
		}
		plan, ok := c.Plans[planName]
		if !ok {
			return nil, fmt.Errorf("config: %s.plan: unknown plan %q", key, planName)
		}
		c.Accounts = append(c.Accounts, Account{APIKey: *a.APIKey, Name: *a.Name, Plan: plan})
	}

	ids := make(map[string]bool)
	defaults := 0
	for i, a := range f.Avatars {
		key := fmt.Sprintf("avatars[%d]", i)
		if a.AvatarID == nil || *a.AvatarID == "" {
			return nil, fmt.Errorf("config: %s.avatar_id: required", key)
		}
		if ids[*a.AvatarID] {
			return nil, fmt.Errorf("config: %s.avatar_id: %q is used by an earlier avatar", key, *a.AvatarID)
		}
		ids[*a.AvatarID] = true
		av := session.Avatar{ID: *a.AvatarID, Active: true}
		if a.Public != nil {
			av.Public = *a.Public
		}
		if a.Status != nil {
			switch strings.ToUpper(*a.Status) {
			case "ACTIVE":
			case "INACTIVE":
				av.Active = false
			default:
				return nil, fmt.Errorf("config: %s.status: %q is neither ACTIVE nor INACTIVE", key, *a.Status)
			}
		}
		if a.Default != nil && *a.Default {
			av.Default = true
			if defaults++; defaults > 1 {
				return nil, fmt.Errorf("config: %s.default: a second default avatar", key)
			}
		}
		if a.Owner != nil && *a.Owner != "" {
			if !names[*a.Owner] {
				return nil, fmt.Errorf("config: %s.owner: no account is named %q", key, *a.Owner)
			}
			av.Owner = *a.Owner
		}
		if a.DefaultVoice != nil {
			av.DefaultVoice = *a.DefaultVoice
		}
		c.Avatars = append(c.Avatars, av)
	}
	return c, nil
}

// The defaults of the node's bounds.
const (
	// DefaultMaxClosedPerAccount is the default of max_closed_per_account.
	DefaultMaxClosedPerAccount = session.DefaultMaxClosedPerAccount
	// DefaultIdempotencyMaxKeysPerAccount is the default of
	// idempotency_max_keys_per_account.
	DefaultIdempotencyMaxKeysPerAccount = server.DefaultMaxKeysPerAccount
)

// resolveNode reads the keys that bound the node and say where it is
// reached.
func (f *fileJSON) resolveNode(c *Config) error {
	c.MaxClosedPerAccount = DefaultMaxClosedPerAccount
	if f.MaxClosedPerAccount != nil {
		n, err := between("max_closed_per_account", *f.MaxClosedPerAccount, -1, 1<<31-1)
		if err != nil {
			return err
		}
		c.MaxClosedPerAccount = n
	}
	c.IdempotencyMaxKeysPerAccount = DefaultIdempotencyMaxKeysPerAccount
	if f.IdempotencyMaxKeysPerAccount != nil {
		n, err := between("idempotency_max_keys_per_account", *f.IdempotencyMaxKeysPerAccount, 1, 1<<31-1)
		if err != nil {
			return err
		}
		c.IdempotencyMaxKeysPerAccount = n
	}
	if f.MaxConnections != nil {
		n, err := between("max_connections", *f.MaxConnections, 0, 1<<31-1)
		if err != nil {
			return err
		}
		c.MaxConnections = n
	}
	if f.RedisWaitReplicas != nil {
		n, err := between("redis_wait_replicas", *f.RedisWaitReplicas, 0, 64)
		if err != nil {
			return err
		}
		c.Redis.WaitReplicas = n
	}
	if f.PublicURL != nil {
		if err := CheckPublicURL(*f.PublicURL); err != nil {
			return fmt.Errorf("config: public_url: %w", err)
		}
		c.PublicURL = strings.TrimRight(*f.PublicURL, "/")
	}
	if f.AdminAddr != nil {
		c.AdminAddr = *f.AdminAddr
	}
	if f.Media != nil {
		m, err := f.Media.resolve()
		if err != nil {
			return err
		}
		c.Media = m
	}
	return nil
}

// resolve reads the media object. Unlike the other keys, a file without
// it does not take the demo's: media stays off.
func (m *mediaJSON) resolve() (MediaConfig, error) {
	c := MediaConfig{UDPAddr: media.DefaultUDPAddr}
	if m.Enabled != nil {
		c.Enabled = *m.Enabled
	}
	if m.UDP != nil {
		if err := CheckMediaUDP(*m.UDP); err != nil {
			return MediaConfig{}, fmt.Errorf("config: media.udp: %w", err)
		}
		c.UDPAddr = *m.UDP
	}
	if m.PublicIP != nil {
		if err := CheckMediaPublicIP(*m.PublicIP); err != nil {
			return MediaConfig{}, fmt.Errorf("config: media.public_ip: %w", err)
		}
		c.PublicIP = *m.PublicIP
	}
	for i, s := range m.ICEServers {
		key := fmt.Sprintf("media.ice_servers[%d].urls", i)
		if len(s.URLs) == 0 {
			return MediaConfig{}, fmt.Errorf("config: %s: required", key)
		}
		for _, u := range s.URLs {
			scheme, _, _ := strings.Cut(u, ":")
			switch scheme {
			case "stun", "stuns", "turn", "turns":
			default:
				return MediaConfig{}, fmt.Errorf("config: %s: %q is not a stun:, stuns:, turn: or turns: URL", key, u)
			}
		}
		c.ICEServers = append(c.ICEServers, media.ICEServer{
			URLs: append([]string{}, s.URLs...), Username: s.Username, Credential: s.Credential,
		})
	}
	if m.NodeURL != nil {
		if err := CheckNodeURL(*m.NodeURL); err != nil {
			return MediaConfig{}, fmt.Errorf("config: media.node_url: %w", err)
		}
		c.NodeURL = strings.TrimRight(*m.NodeURL, "/")
	}
	return c, nil
}

// CheckMediaUDP reports whether s is a valid media UDP address: host:port
// with an IP address (or an empty host, every interface) and a port.
func CheckMediaUDP(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host != "" && net.ParseIP(host) == nil {
		return fmt.Errorf("%q: the host must be an IP address", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: the port must be 0–65535", s)
	}
	return nil
}

// CheckMediaPublicIP reports whether s is a valid public_ip: empty, or an
// IP address.
func CheckMediaPublicIP(s string) error {
	if s != "" && net.ParseIP(s) == nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	return nil
}

// CheckNodeURL reports whether s is a valid node_url: empty, or an
// absolute http or https URL with a host and no user, query or fragment.
func CheckNodeURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.User != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an http(s) URL: scheme://host[:port][/path]", s)
	}
	return nil
}

// CheckPublicURL reports whether s is a valid public_url: empty, or an
// absolute http or https URL with a host and no query or fragment.
func CheckPublicURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.User != nil {
		return errors.New("a public URL holds no user or password")
	}
	if (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an http(s) or ws(s) URL: scheme://host[:port][/path]", s)
	}
	return nil
}

func (p planJSON) resolve(name string) (limits.Plan, error) {
	key := "plans." + name
	if name == "" {
		return limits.Plan{}, errors.New("config: plans: a plan has an empty name")
	}
	plan := limits.Plan{Name: name, MaxConcurrent: 100, MonthlyMinutes: 300}
	if p.Trial != nil {
		plan.Trial = *p.Trial
	}
	if plan.Trial {
		plan.MaxConcurrent = 3
		plan.SessionDurationLimit = 600 * time.Second
	}
	if p.MaxConcurrent != nil {
		n, err := between(key+".max_concurrent", *p.MaxConcurrent, 0, 1<<31-1)
		if err != nil {
			return limits.Plan{}, err
		}
		plan.MaxConcurrent = n
	}
	if p.MonthlyMinutes != nil {
		n, err := between(key+".monthly_minutes", *p.MonthlyMinutes, 0, 1<<31-1)
		if err != nil {
			return limits.Plan{}, err
		}
		plan.MonthlyMinutes = n
	}
	if p.SessionDurationLimit != nil {
		n, err := between(key+".session_duration_limit", *p.SessionDurationLimit, 0, maxSeconds)
		if err != nil {
			return limits.Plan{}, err
		}
		plan.SessionDurationLimit = time.Duration(n) * time.Second
	}
	if p.MaxTokensPerAccount != nil {
		n, err := between(key+".max_tokens_per_account", *p.MaxTokensPerAccount, 0, maxTokensPerAccount)
		if err != nil {
			return limits.Plan{}, err
		}
		plan.MaxTokens = n
		if n == 0 {
			plan.MaxTokens = -1 // limits.Plan: negative allows none
		}
	}
	rate, err := p.rateLimit(name)
	if err != nil {
		return limits.Plan{}, err
	}
	plan.RequestsPerSecond, plan.RequestBurst = rate.PerSecond, rate.Burst
	return plan, nil
}

// maxRequestsPerSecond bounds a plan's requests_per_second.
const maxRequestsPerSecond = 1e6

// rateLimit is the plan's request budget: requests_per_second and burst.
func (p planJSON) rateLimit(name string) (server.RateLimit, error) {
	key := "plans." + name
	if p.RequestsPerSecond == nil {
		if p.Burst != nil {
			return server.RateLimit{}, fmt.Errorf("config: %s.burst: needs requests_per_second", key)
		}
		return server.RateLimit{}, nil
	}
	rps := *p.RequestsPerSecond
	if !(rps > 0 && rps <= maxRequestsPerSecond) {
		return server.RateLimit{}, fmt.Errorf("config: %s.requests_per_second: %v is outside (0, %v]", key, rps, float64(maxRequestsPerSecond))
	}
	limit := server.RateLimit{PerSecond: rps}
	if p.Burst != nil {
		n, err := between(key+".burst", *p.Burst, 1, 1<<31-1)
		if err != nil {
			return server.RateLimit{}, err
		}
		limit.Burst = n
	}
	limit.Burst = limit.EffectiveBurst()
	return limit, nil
}

// RateLimit returns a lookup of each account's request budget by account
// name, for server.Config.RateLimit: its plan's RequestsPerSecond and
// RequestBurst, and the zero RateLimit (unlimited) for an account whose plan
// sets none or a name c does not have. It returns nil when no plan sets one.
func (c *Config) RateLimit() func(acct session.Account) server.RateLimit {
	byAccount := make(map[string]server.RateLimit)
	for _, a := range c.Accounts {
		if r := planRate(a.Plan); !r.Unlimited() {
			byAccount[a.Name] = r
		}
	}
	if len(byAccount) == 0 {
		return nil
	}
	return func(acct session.Account) server.RateLimit { return byAccount[acct.Name] }
}

// planRate is a plan's request budget as the server takes it.
func planRate(p limits.Plan) server.RateLimit {
	if p.RequestsPerSecond <= 0 {
		return server.RateLimit{}
	}
	r := server.RateLimit{PerSecond: p.RequestsPerSecond, Burst: p.RequestBurst}
	r.Burst = r.EffectiveBurst()
	return r
}

func between(key string, v, lo, hi int) (int, error) {
	if v < lo || v > hi {
		return 0, fmt.Errorf("config: %s: %d is outside %d–%d", key, v, lo, hi)
	}
	return v, nil
}

// AccountsByKey returns the accounts for [server.Config].Accounts.
func (c *Config) AccountsByKey() server.AccountsByKey {
	m := make(server.AccountsByKey, len(c.Accounts))
	for _, a := range c.Accounts {
		m[a.APIKey] = session.Account{Name: a.Name, Plan: a.Plan}
	}
	return m
}

// MaxTokensPerAccount returns the bound of outstanding bearer tokens of
// acct: its plan's MaxTokens, server.DefaultMaxTokensPerAccount when that
// is zero, and 0 when it is negative. Its signature is that of
// server.MemoryTokensConfig.MaxPerAccount and
// redistokens.Config.MaxPerAccount, where it belongs.
func MaxTokensPerAccount(acct session.Account) int {
	switch n := acct.Plan.MaxTokens; {
	case n == 0:
		return server.DefaultMaxTokensPerAccount
	case n < 0:
		return 0
	default:
		return n
	}
}
