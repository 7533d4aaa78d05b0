package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/limits/redislimiter"
	"github.com/streamsession/streamsession/server/redisidem"
	"github.com/streamsession/streamsession/server/redisrate"
	"github.com/streamsession/streamsession/server/redisrelay"
	"github.com/streamsession/streamsession/server/redistokens"
	"github.com/streamsession/streamsession/session/redisstore"
)

// redisConnectTimeout bounds the checks made at start.
const redisConnectTimeout = 5 * time.Second

// redisBackends are the Redis limiter, session store, token store,
// idempotency store and speech relay of one node, on one client.
type redisBackends struct {
	client  redis.UniversalClient
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
func openRedis(ctx context.Context, cfg *Config) (*redisBackends, error) {
	opts := cfg.Redis
	client, err := newRedisClient(opts)
	if err != nil {
		return nil, err
	}
	b := &redisBackends{client: client, requestTimeout: opts.RequestTimeout}
	if b.requestTimeout <= 0 {
		b.requestTimeout = DefaultRequestTimeout
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
	secret := cfg.Secret
	if secret == nil {
		if secret, err = redistokens.SharedSecret(cctx, client, opts.Prefix); err != nil {
			return fail(err)
		}
	}
	b.secret = secret
	if b.limiter, err = redislimiter.New(client, redislimiter.Config{
		Prefix: opts.Prefix, Capacity: cfg.Capacity, LeaseTTL: opts.LeaseTTL,
	}); err != nil {
		return fail(err)
	}
	if b.tokens, err = redistokens.New(client, redistokens.Config{
		Secret: secret, Prefix: opts.Prefix, MaxPerAccount: MaxTokensPerAccount,
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

// close releases the backends, after the node's Shutdown or Drain.
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

// closeBy closes the Redis backends, giving up at deadline: a Redis that
// does not answer would otherwise hold the exit for its timeouts. A nil b
// has nothing to close.
func (b *redisBackends) closeBy(deadline time.Time) error {
	if b == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- b.close() }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errors.New("redis: not closed before the shutdown deadline")
	}
}

// newRedisClient is the one place a node's Redis client is made: every
// backend takes it as a redis.UniversalClient, so a Sentinel or Cluster
// client needs no code of theirs. Addr is host:port.
func newRedisClient(opts RedisConfig) (redis.UniversalClient, error) {
	if opts.Addr == "" {
		return nil, errors.New("redis: no address")
	}
	return redis.NewClient(&redis.Options{Addr: opts.Addr, ContextTimeoutEnabled: true}), nil
}
