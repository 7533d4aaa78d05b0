package redistokens

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	sserrors "github.com/streamsession/streamsession/errors"
)

// SharedSecret returns the access-token secret every node using this
// Redis and prefix agrees on: the first node to ask stores 32 random bytes
// (SET NX), and every node reads what is stored. The secret never expires;
// deleting the key "{prefix}:secret" rotates it (tokens minted before stop
// working on nodes started after). An empty prefix means DefaultPrefix.
//
// A Redis that loses its data loses the secret too; a SecretKeeper (from
// KeepSecret) writes it back, so that the nodes keep agreeing.
func SharedSecret(ctx context.Context, client redis.UniversalClient, prefix string) ([]byte, error) {
	key, err := secretKey(prefix)
	if err != nil {
		return nil, err
	}
	var b [32]byte
	rand.Read(b[:])
	res, err := secretScript.Run(ctx, client, []string{key}, hex.EncodeToString(b[:])).Slice()
	if err != nil {
		return nil, unavailable("secret", err)
	}
	return decodeSecret(res)
}

func secretKey(prefix string) (string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return "", invalid("prefix %q contains a brace", prefix)
	}
	return "{" + prefix + "}:secret", nil
}

// decodeSecret reads the stored secret from secretScript's reply.
func decodeSecret(res []any) ([]byte, error) {
	var got string
	if len(res) == 2 {
		got, _ = res[1].(string)
	}
	secret, err := hex.DecodeString(got)
	if err != nil || len(secret) < 16 {
		return nil, sserrors.ErrInternalServerError.WithCause(fmt.Errorf("redistokens: the stored secret is not 16 or more bytes in hex"))
	}
	return secret, nil
}

// ErrSecretChanged is SecretKeeper.Err's answer when the secret in Redis
// is no longer this node's: Redis lost its data, and another node wrote
// its own secret back before this one. This node's tokens and sealed
// answers are under its old secret, so it cannot adopt the new one while
// it runs; restarted, it adopts it.
// Its ReadyReason is "secret_changed", the reason a node's /readyz gives
// (server.HeaderNotReady) when its Ready check returns it.
var ErrSecretChanged error = secretChanged{}

// ReasonSecretChanged is ErrSecretChanged's ReadyReason.
const ReasonSecretChanged = "secret_changed"

type secretChanged struct{}

func (secretChanged) Error() string {
	return "redistokens: the service's secret in Redis is another node's (Redis lost its data and another node wrote its secret first): restart this node to adopt it"
}

// ReadyReason names the cause for a readiness probe.
func (secretChanged) ReadyReason() string { return ReasonSecretChanged }

// SecretKeeper keeps a node's shared secret in Redis: when Redis lost its
// data (flushed, or restarted without persistence), the first node to
// look writes its secret back, so that the nodes that lived through the
// loss and those started afterwards agree on it again. A node that finds
// another secret there cannot adopt it and says so through Err (the
// node's /readyz turns 503 with that reason). A SecretKeeper is safe for
// concurrent use by multiple goroutines.
type SecretKeeper struct {
	client redis.UniversalClient
	key    string
	secret []byte
	hex    string

	mu  sync.Mutex
	err error
}

// KeepSecret agrees on the secret as SharedSecret does and returns a
// SecretKeeper for it. Call Run (or Check periodically) to keep it.
func KeepSecret(ctx context.Context, client redis.UniversalClient, prefix string) (*SecretKeeper, error) {
	key, err := secretKey(prefix)
	if err != nil {
		return nil, err
	}
	secret, err := SharedSecret(ctx, client, prefix)
	if err != nil {
		return nil, err
	}
	return &SecretKeeper{client: client, key: key, secret: secret, hex: hex.EncodeToString(secret)}, nil
}

// Secret returns the node's secret. The slice is shared: do not modify it.
func (k *SecretKeeper) Secret() []byte { return k.secret }

// Err returns nil while the secret in Redis is this node's, ErrSecretChanged
// once another node's replaced it. It reflects the last Check that reached
// Redis.
func (k *SecretKeeper) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Check looks at the secret in Redis once: when it is missing it writes
// this node's back (restored is true); when it is another node's, Err
// turns ErrSecretChanged (and back to nil should this node's return). A
// Redis failure is returned (503/400558) and leaves Err as it was.
func (k *SecretKeeper) Check(ctx context.Context) (restored bool, err error) {
	res, err := secretScript.Run(ctx, k.client, []string{k.key}, k.hex).Slice()
	if err != nil {
		return false, unavailable("secret", err)
	}
	stored, err := decodeSecret(res)
	if err != nil {
		return false, err
	}
	set, _ := res[0].(int64)
	k.mu.Lock()
	defer k.mu.Unlock()
	if hex.EncodeToString(stored) != k.hex {
		k.err = ErrSecretChanged
	} else {
		k.err = nil
	}
	return set == 1, nil
}

// Run calls Check every interval until ctx ends, and passes to report
// (which may be nil) a secret written back (restored, nil error) and each
// change of the outcome: a Redis failure, ErrSecretChanged, and nil once
// all is well again.
func (k *SecretKeeper) Run(ctx context.Context, interval time.Duration, report func(restored bool, err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, interval)
		restored, err := k.Check(cctx)
		cancel()
		if err == nil {
			err = k.Err()
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if (restored || msg != last) && report != nil {
			report(restored, err)
		}
		last = msg
	}
}

// secretScript stores ARGV[1] unless a secret is stored. KEYS: 1 secret.
// ARGV: 1 candidate. Returns {1 if it stored ARGV[1] else 0, the secret
// stored}.
var secretScript = redis.NewScript(`
local set = redis.call('SET', KEYS[1], ARGV[1], 'NX')
local v = redis.call('GET', KEYS[1])
if set then return {1, v} end
return {0, v}
`)
