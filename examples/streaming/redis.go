package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/limits/redislimiter"
	"github.com/streamsession/streamsession/server/config"
	"github.com/streamsession/streamsession/server/redisidem"
	"github.com/streamsession/streamsession/server/redisrate"
	"github.com/streamsession/streamsession/server/redisrelay"
	"github.com/streamsession/streamsession/server/redistokens"
	"github.com/streamsession/streamsession/session/redisstore"
)

// redisOptions are the flags of distributed mode (-redis ADDR): every node
// started with the same Redis, prefix and configuration file is one
// service.
type redisOptions struct {
	// Addr is the Redis address (host:port); empty means one node in
	// memory.
	Addr string
	// Prefix is the hash tag of every key (hidden flag -redis-prefix).
	Prefix string
	// LeaseTTL is the limiter's lease lifetime (hidden flag -lease-ttl, for
	// tests); zero takes redislimiter's default (30 s).
	LeaseTTL time.Duration
	// RequestTimeout bounds each API request's work on Redis (hidden flag
	// -request-timeout); zero means defaultRequestTimeout. A call that
	// Redis does not answer in time gets 503/400558 with a Retry-After.
	RequestTimeout time.Duration
	// Secret, when set (-secret-file), is the service's secret; otherwise
	// the nodes agree on one through Redis (redistokens.SharedSecret), so
	// that whoever reads Redis reads it too.
	Secret []byte
}

// defaultRequestTimeout bounds an API request in distributed mode.
const defaultRequestTimeout = 10 * time.Second

// redisConnectTimeout bounds the checks made at start.
const redisConnectTimeout = 5 * time.Second

// redisBackends are the Redis limiter, session store, token store,
// idempotency store and speech relay of one node, on one client.
type redisBackends struct {
	client  *redis.Client
	limiter *redislimiter.Limiter
	store   *redisstore.Store
	tokens  *redistokens.Store
	idem    *redisidem.Store
	relay   *redisrelay.Relay
	rates   *redisrate.Limiter
	secret  []byte

	requestTimeout time.Duration
}

// openRedis connects to Redis and builds the backends. It fails when
// Redis does not answer within redisConnectTimeout: the nodes agree on the
// service's secret through it at start (it keys the access tokens, the
// bearer tokens and the sealing of the stored idempotent answers).
func openRedis(ctx context.Context, opts redisOptions, cfg *config.Config) (*redisBackends, error) {
	client := redis.NewClient(&redis.Options{Addr: opts.Addr, ContextTimeoutEnabled: true})
	b := &redisBackends{client: client, requestTimeout: opts.RequestTimeout}
	if b.requestTimeout <= 0 {
		b.requestTimeout = defaultRequestTimeout
	}
	fail := func(err error) (*redisBackends, error) {
		b.close()
		return nil, fmt.Errorf("redis %s: %w", opts.Addr, err)
	}
	cctx, cancel := context.WithTimeout(ctx, redisConnectTimeout)
	defer cancel()
	if err := client.Ping(cctx).Err(); err != nil {
		return fail(err)
	}
	secret := opts.Secret
	if secret == nil {
		var err error
		if secret, err = redistokens.SharedSecret(cctx, client, opts.Prefix); err != nil {
			return fail(err)
		}
	}
	b.secret = secret
	var err error
	if b.limiter, err = redislimiter.New(client, redislimiter.Config{
		Prefix: opts.Prefix, Capacity: cfg.Capacity, LeaseTTL: opts.LeaseTTL,
	}); err != nil {
		return fail(err)
	}
	if b.tokens, err = redistokens.New(client, redistokens.Config{
		Secret: secret, Prefix: opts.Prefix, MaxPerAccount: cfg.MaxTokensPerAccount,
	}); err != nil {
		return fail(err)
	}
	if b.idem, err = redisidem.New(client, redisidem.Config{
		Secret: secret, Prefix: opts.Prefix, TTL: cfg.IdempotencyTTL,
	}); err != nil {
		return fail(err)
	}
	if b.store, err = redisstore.New(client, redisstore.Config{Prefix: opts.Prefix}); err != nil {
		return fail(err)
	}
	if b.relay, err = redisrelay.New(client, redisrelay.Config{Prefix: opts.Prefix}); err != nil {
		return fail(err)
	}
	if b.rates, err = redisrate.New(client, redisrate.Config{Prefix: opts.Prefix}); err != nil {
		return fail(err)
	}
	return b, nil
}

// apply puts the backends into the service's options.
func (b *redisBackends) apply(o *config.Options) {
	o.Limiter = b.limiter
	o.Session.Store = b.store
	o.Server.Tokens = b.tokens
	o.Server.Idempotency.Store = b.idem
	o.Server.Secret = b.secret
	o.Server.Relay = b.relay
	o.Server.RateLimiter = b.rates
}

// handler bounds the context of every request to h by the request
// timeout, so that a Redis that hangs (paused, overloaded, unreachable)
// costs a caller at most that long: the Redis backends then answer
// 503/400558. A stop goes on after the deadline (the server detaches it),
// and a realtime socket, once open, does not depend on it.
func (b *redisBackends) handler(h http.Handler) http.Handler {
	d := b.requestTimeout
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// close releases the backends, after the service's Shutdown (which closes
// this node's sessions and frees their slots).
func (b *redisBackends) close() error {
	var errs []error
	if b.store != nil {
		errs = append(errs, b.store.Close())
	}
	if b.limiter != nil {
		errs = append(errs, b.limiter.Close())
	}
	if b.relay != nil {
		errs = append(errs, b.relay.Close())
	}
	errs = append(errs, b.client.Close())
	return errors.Join(errs...)
}
