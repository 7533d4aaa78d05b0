// Package config reads the JSON configuration of the streamsession server
// (examples/streaming) and wires a whole service from it: the in-memory
// limiter, the session manager and the HTTP handler.
//
// Start with [Parse] (or [Load] for a file, [Demo] for the built-in demo),
// then [NewService]. End-to-end tests use the same two calls.
//
// # The file
//
// A JSON object with exactly these keys, each optional:
//
//	{
//	  "capacity": 1000,
//	  "join_timeout_seconds": 300,
//	  "closed_retention_seconds": 600,
//	  "body_read_timeout_seconds": 10,
//	  "cors_origins": ["http://localhost:*", "http://127.0.0.1:*"],
//	  "idempotency_ttl_seconds": 86400,
//	  "plans": {
//	    "trial": {"max_concurrent": 3, "trial": true, "monthly_minutes": 300, "session_duration_limit": 600},
//	    "pro":   {"max_concurrent": 100}
//	  },
//	  "accounts": [
//	    {"api_key": "demo-trial-key", "name": "demo-trial", "plan": "trial"},
//	    {"api_key": "demo-pro-key",   "name": "demo-pro",   "plan": "pro"}
//	  ],
//	  "avatars": [
//	    {"avatar_id": "Wayne_20240711", "public": true, "status": "ACTIVE", "default": true},
//	    {"avatar_id": "demo_private",   "owner": "demo-pro", "status": "ACTIVE"}
//	  ]
//	}
//
// A missing key takes its default, which is the value shown above ([DemoJSON]
// is that file, so "{}" is the demo configuration), except that the default
// "avatars" leaves out a demo avatar whose owner is not one of the file's
// accounts. A key that is present replaces its default entirely: "plans",
// "accounts" and "avatars" are not merged with the demo ones. Inside them:
//
//   - capacity (the open sessions of the whole service), join_timeout_seconds,
//     closed_retention_seconds and body_read_timeout_seconds (how long a
//     request's body may take to arrive: server.Config.BodyReadTimeout) are
//     whole numbers from 1 to 31536000.
//   - idempotency_ttl_seconds (how long streaming.new keeps an
//     Idempotency-Key and its answer) is a whole number from 1 to 31536000.
//   - cors_origins lists the browser origins allowed to call the API and
//     open the realtime socket (server.Config.Origins): exact origins
//     ("https://app.example.com"), "*" for any, or a port wildcard
//     ("http://localhost:*"); [] allows none.
//   - A plan: "trial" (default false); "max_concurrent" (default 3 for a
//     trial plan, 100 otherwise; 0 allows no session); "monthly_minutes"
//     (default 300; counted for trial plans only; 0 refuses every session);
//     "session_duration_limit" in seconds (default 600 for a trial plan, 0 =
//     none otherwise); "requests_per_second" (a number above 0, at most
//     1000000; default none: unlimited) and "burst" (1 or more; default the
//     rate rounded up; only with requests_per_second), the request budget of
//     each account of the plan (server.Config.RateLimit);
//     "max_tokens_per_account" (default 1000, at most 1000000; 0 refuses
//     every streaming.create_token), the bearer tokens an account of the
//     plan may hold at once before create_token answers 429/400140. Numbers
//     are 0 or more unless said.
//   - An account: "api_key" and "name" are required and unique; "plan"
//     (default "trial") names a plan.
//   - An avatar: "avatar_id" is required and unique; "public" (default
//     false); "status" ACTIVE or INACTIVE, in any case (default ACTIVE);
//     "default" (default false, at most one avatar); "owner" names an
//     account by its name (default none); "default_voice" (default none).
//     An avatar that is neither public nor owned is usable by no one.
//
// An unknown key, a value of the wrong type, trailing data or a bad value is
// an error whose message names the key ("config: accounts[1].plan: unknown
// plan \"gold\"").
//
// # Concurrency
//
// A [Config] is a plain value, safe to share once built. A [Service] is safe
// for concurrent use; its Shutdown may be called once.
package config

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/streamsession/streamsession/limits"
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

// Config is a parsed, validated configuration. It is a plain value.
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
	// RateLimits holds, by plan name, the request budget of each account of
	// the plans that set one; the other plans are unlimited.
	RateLimits map[string]server.RateLimit
	// IdempotencyTTL is how long streaming.new keeps an Idempotency-Key.
	IdempotencyTTL time.Duration
	// Plans by name.
	Plans map[string]limits.Plan
	// MaxTokens is each plan's max_tokens_per_account, by plan name.
	MaxTokens map[string]int
	// Accounts in file order.
	Accounts []Account
	// Avatars in file order.
	Avatars session.Avatars
}

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
	c := &Config{Plans: make(map[string]limits.Plan), MaxTokens: make(map[string]int)}
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
	if _, err := server.NewOriginPolicy(c.CORSOrigins); err != nil {
		return nil, fmt.Errorf("config: cors_origins%w", err)
	}

	for name, p := range f.Plans {
		plan, err := p.resolve(name)
		if err != nil {
			return nil, err
		}
		c.Plans[name] = plan
		c.MaxTokens[name] = server.DefaultMaxTokensPerAccount
		if p.MaxTokensPerAccount != nil {
			n, err := between("plans."+name+".max_tokens_per_account", *p.MaxTokensPerAccount, 0, maxTokensPerAccount)
			if err != nil {
				return nil, err
			}
			c.MaxTokens[name] = n
		}
		rate, err := p.rateLimit(name)
		if err != nil {
			return nil, err
		}
		if !rate.Unlimited() {
			if c.RateLimits == nil {
				c.RateLimits = make(map[string]server.RateLimit)
			}
			c.RateLimits[name] = rate
		}
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
// name, for server.Config.RateLimit: its plan's requests_per_second and
// burst, and the zero RateLimit (unlimited) for an account whose plan sets
// none or a name c does not have. It returns nil when no plan sets one.
func (c *Config) RateLimit() func(account string) server.RateLimit {
	if len(c.RateLimits) == 0 {
		return nil
	}
	byAccount := make(map[string]server.RateLimit)
	for _, a := range c.Accounts {
		if r, ok := c.RateLimits[a.Plan.Name]; ok {
			byAccount[a.Name] = r
		}
	}
	return func(account string) server.RateLimit { return byAccount[account] }
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
// acct: its plan's max_tokens_per_account, or
// server.DefaultMaxTokensPerAccount for a plan the file does not have. Its
// signature is that of server.MemoryTokensConfig.MaxPerAccount and
// redistokens.Config.MaxPerAccount, where it belongs.
func (c *Config) MaxTokensPerAccount(acct session.Account) int {
	if n, ok := c.MaxTokens[acct.Plan.Name]; ok {
		return n
	}
	return server.DefaultMaxTokensPerAccount
}

// Options adjust [NewService]. The zero value is the single-node default.
type Options struct {
	// Server is the template of the server's configuration; NewService
	// fills in Manager, Accounts, Avatars, Origins (cors_origins),
	// BodyReadTimeout and RateLimit from the configuration, Tokens when it is
	// nil (an in-memory store bounded by each plan's max_tokens_per_account),
	// and Idempotency.TTL when it is zero.
	Server server.Config
	// Session is the template of the manager's configuration; NewService
	// fills in Limiter, Avatars, JoinTimeout and Retention.
	Session session.Config
	// Limiter replaces the in-memory limiter (e.g. a Redis one shared by
	// several nodes). The Service does not close a Limiter given here.
	Limiter limits.Limiter
	// LeaseTTL is the lease lifetime of the in-memory limiter; zero takes
	// its default.
	LeaseTTL time.Duration
}

// Service is a running configuration: the limiter, the session manager and
// the HTTP handler, wired together. It is safe for concurrent use.
type Service struct {
	Config  *Config
	Limiter limits.Limiter
	Manager *session.Manager
	Server  *server.Server

	ownLimiter bool
}

// NewService builds the limiter (unless opts.Limiter), the manager and the
// server for c. Call Shutdown to release them.
func NewService(c *Config, opts Options) (*Service, error) {
	svc := &Service{Config: c, Limiter: opts.Limiter}
	if svc.Limiter == nil {
		lim, err := newMemoryLimiter(c.Capacity, opts.LeaseTTL)
		if err != nil {
			return nil, err
		}
		svc.Limiter, svc.ownLimiter = lim, true
	}
	scfg := opts.Session
	scfg.Limiter = svc.Limiter
	scfg.Avatars = c.Avatars
	scfg.JoinTimeout = c.JoinTimeout
	scfg.Retention = c.ClosedRetention
	mgr, err := session.NewManager(scfg)
	if err != nil {
		svc.closeLimiter()
		return nil, err
	}
	svc.Manager = mgr
	hcfg := opts.Server
	hcfg.Manager = mgr
	hcfg.Accounts = c.AccountsByKey()
	hcfg.Avatars = c.Avatars
	hcfg.Origins = c.CORSOrigins
	hcfg.BodyReadTimeout = c.BodyReadTimeout
	hcfg.RateLimit = c.RateLimit()
	if hcfg.Tokens == nil {
		tcfg := server.MemoryTokensConfig{TTL: hcfg.TokenTTL, MaxPerAccount: c.MaxTokensPerAccount}
		if hcfg.Clock != nil {
			tcfg.Now = hcfg.Clock.Now
		}
		hcfg.Tokens = server.NewMemoryTokens(tcfg)
	}
	if hcfg.Idempotency.TTL == 0 {
		hcfg.Idempotency.TTL = c.IdempotencyTTL
	}
	srv, err := server.New(hcfg)
	if err != nil {
		_ = mgr.Close(context.Background())
		svc.closeLimiter()
		return nil, err
	}
	svc.Server = srv
	return svc, nil
}

// Shutdown ends the service: it closes every session (connected clients
// receive closing and closed, every slot is freed), then the realtime
// sockets, then the in-memory limiter. Stop the HTTP listener first so that
// no new session arrives meanwhile. When ctx ends first, the sockets left
// are dropped and ctx's error is returned.
func (s *Service) Shutdown(ctx context.Context) error {
	errMgr := s.Manager.Close(ctx)
	errSrv := s.Server.Shutdown(ctx)
	s.closeLimiter()
	return errors.Join(errMgr, errSrv)
}

func (s *Service) closeLimiter() {
	if s.ownLimiter {
		_ = s.Limiter.Close()
	}
}
