package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamsession/streamsession/limits/redislimiter"
	"github.com/streamsession/streamsession/server/redisidem"
	"github.com/streamsession/streamsession/server/redisrate"
	"github.com/streamsession/streamsession/server/redisrelay"
	"github.com/streamsession/streamsession/server/redistokens"
	"github.com/streamsession/streamsession/service/redisurl"
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
	// keeper keeps the secret agreed through Redis (nil with a secret of
	// the command line): /readyz fails while keeper.Err is non-nil.
	keeper *redistokens.SecretKeeper
	// where names the Redis for logs and errors, without its password.
	where string
	// stopKeeper ends the keeper's goroutine.
	stopKeeper context.CancelFunc
	keeperDone chan struct{}

	requestTimeout time.Duration
}

// openRedis connects to Redis and builds the backends. It fails when
// Redis does not answer within redisConnectTimeout: the nodes agree on the
// service's secret through it at start (it keys the access tokens, the
// bearer tokens and the sealing of the stored idempotent answers). The
// events of Redis in production (a WAIT short of its replicas, a data loss,
// the secret restored or replaced) reach n's metrics and logs.
func openRedis(ctx context.Context, cfg *Config, n *Node) (*redisBackends, error) {
	opts := cfg.Redis
	rcfg, err := parseRedis(opts)
	if err != nil {
		return nil, err
	}
	client := rcfg.NewClient()
	b := &redisBackends{client: client, requestTimeout: opts.RequestTimeout, where: rcfg.String()}
	if b.requestTimeout <= 0 {
		b.requestTimeout = DefaultRequestTimeout
	}
	fail := func(err error) (*redisBackends, error) {
		b.close()
		return nil, fmt.Errorf("redis %s: %w", b.where, err)
	}
	cctx, cancel := context.WithTimeout(ctx, redisConnectTimeout)
	defer cancel()
	if err := client.Ping(cctx).Err(); err != nil {
		return fail(err)
	}
	secret := cfg.Secret
	if secret == nil {
		if b.keeper, err = redistokens.KeepSecret(cctx, client, opts.Prefix); err != nil {
			return fail(err)
		}
		secret = b.keeper.Secret()
	}
	b.secret = secret
	logger := n.logger
	onWaitShort := func(acked int, err error) {
		if n.met != nil {
			n.met.RedisWaitShort(acked, err)
		}
		logger.Warn("redis: fewer replicas than redis_wait_replicas acknowledged a write; a failover may lose it",
			"want", opts.WaitReplicas, "acked", acked, "err", err)
	}
	if b.limiter, err = redislimiter.New(client, redislimiter.Config{
		Prefix: opts.Prefix, Capacity: cfg.Capacity, LeaseTTL: opts.LeaseTTL,
		WaitReplicas: opts.WaitReplicas, OnWaitShort: onWaitShort,
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
		MaxKeysPerAccount: cfg.IdempotencyMaxKeysPerAccount,
	}); err != nil {
		return fail(err)
	}
	if b.store, err = redisstore.New(client, redisstore.Config{
		Prefix: opts.Prefix, MaxClosedPerAccount: cfg.MaxClosedPerAccount,
		WaitReplicas: opts.WaitReplicas, OnWaitShort: onWaitShort,
		OnDataLoss: func(loss redisstore.DataLoss) {
			if n.met != nil {
				n.met.StoreReset()
			}
			logger.Warn("redis lost the service's data (flushed, or restarted without persistence): the sessions it held were closed",
				"redis", b.where, "sessions_closed", loss.Sessions)
		},
	}); err != nil {
		return fail(err)
	}
	if b.relay, err = redisrelay.New(client, redisrelay.Config{Prefix: opts.Prefix}); err != nil {
		return fail(err)
	}
	if b.rates, err = redisrate.New(client, redisrate.Config{Prefix: opts.Prefix}); err != nil {
		return fail(err)
	}
	if b.keeper != nil {
		b.startKeeper(logger)
	}
	return b, nil
}

// secretCheckInterval is how often a node looks that the secret agreed
// through Redis is still there.
const secretCheckInterval = 2 * time.Second

// startKeeper runs the secret keeper until close: a secret Redis lost is
// written back, and one replaced by another node's turns /readyz 503.
func (b *redisBackends) startKeeper(logger *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	b.stopKeeper, b.keeperDone = cancel, make(chan struct{})
	go func() {
		defer close(b.keeperDone)
		b.keeper.Run(ctx, secretCheckInterval, func(restored bool, err error) {
			switch {
			case restored:
				logger.Warn("redis had lost the service's secret: this node's was written back", "redis", b.where)
			case errors.Is(err, redistokens.ErrSecretChanged):
				logger.Error("the service's secret in Redis is another node's: this node's tokens no longer agree with it; /readyz answers 503 until it restarts", "redis", b.where)
			case err != nil:
				logger.Warn("redis: checking the service's secret failed", "redis", b.where, "err", err)
			default:
				logger.Info("the service's secret in Redis is this node's again", "redis", b.where)
			}
		})
	}()
}

// ready is /readyz's check: Redis answers and holds this node's secret.
func (b *redisBackends) ready(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return err
	}
	if b.keeper != nil {
		return b.keeper.Err()
	}
	return nil
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
	if b.stopKeeper != nil {
		b.stopKeeper()
		<-b.keeperDone
	}
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

// redisPasswordEnv is the environment variable a node reads the Redis
// password from when neither the URL nor RedisConfig.PasswordFile gives one.
const redisPasswordEnv = "STREAMSESSION_REDIS_PASSWORD"

// parseRedis is the one place a node's Redis is read: every backend takes
// the client it makes as a redis.UniversalClient, so a Sentinel or Cluster
// client needs no code of theirs. Addr is host:port or a redisurl URL; the
// error never holds the password.
func parseRedis(opts RedisConfig) (*redisurl.Config, error) {
	if opts.Addr == "" {
		return nil, errors.New("redis: no address")
	}
	ro := redisurl.Options{CAFile: opts.CAFile, PasswordFile: opts.PasswordFile}
	if opts.PasswordFile == "" && os.Getenv(redisPasswordEnv) != "" {
		ro.PasswordEnv = redisPasswordEnv
	}
	cfg, err := redisurl.Parse(opts.Addr, ro)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", redisurl.Redacted(opts.Addr), err)
	}
	return cfg, nil
}
