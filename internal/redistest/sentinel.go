package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name StartSentinels monitors.
const SentinelMaster = "mymaster"

// SentinelOptions are the settings of StartSentinels. The zero value is
// one replica, three Sentinels, a quorum of two and a master taken for
// down after 500 ms. SentinelOptions is a plain value, safe to copy.
type SentinelOptions struct {
	// Replicas is how many replicas the master has (default 1).
	Replicas int
	// Sentinels is how many Sentinels watch it (default 3).
	Sentinels int
	// Quorum is how many Sentinels must agree the master is down (default
	// a majority of Sentinels).
	Quorum int
	// DownAfter is the Sentinels' down-after-milliseconds (default 500 ms).
	DownAfter time.Duration
}

// Sentinels is a master, its replicas and the Sentinels watching them, all
// redis-server child processes on loopback, owned by one test. It is safe
// for concurrent use by multiple goroutines.
type Sentinels struct {
	tb        testing.TB
	servers   []*Server // master first, then the replicas
	sentinels []*Server
}

// StartSentinels runs a master, its replicas (--replicaof) and its
// Sentinels, and returns once every replica is in sync and every Sentinel
// knows every replica and every other Sentinel, so that a failover can
// happen. Everything is stopped when the test ends. Without redis-server on
// PATH it skips the test (fails it when CI is set).
func StartSentinels(tb testing.TB, opt SentinelOptions) *Sentinels {
	tb.Helper()
	if opt.Replicas == 0 {
		opt.Replicas = 1
	}
	if opt.Sentinels == 0 {
		opt.Sentinels = 3
	}
	if opt.Quorum == 0 {
		opt.Quorum = opt.Sentinels/2 + 1
	}
	if opt.DownAfter == 0 {
		opt.DownAfter = 500 * time.Millisecond
	}
	bin := lookBinary(tb)
	master := startServer(tb, bin, false, Options{})
	ss := &Sentinels{tb: tb, servers: []*Server{master}}
	for range opt.Replicas {
		ss.servers = append(ss.servers, startServer(tb, bin, false, Options{Args: []string{
			"--replicaof", "127.0.0.1", strconv.Itoa(master.port),
			"--replica-announce-ip", "127.0.0.1",
		}}))
	}
	for range opt.Sentinels {
		dir := tb.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf(`sentinel resolve-hostnames no
sentinel announce-ip 127.0.0.1
sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d
sentinel down-after-milliseconds %[1]s %[4]d
sentinel failover-timeout %[1]s %[5]d
sentinel parallel-syncs %[1]s 1
`, SentinelMaster, master.port, opt.Quorum, opt.DownAfter.Milliseconds(), 4*opt.DownAfter.Milliseconds()+1000)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			tb.Fatalf("redistest: write the Sentinel's configuration: %v", err)
		}
		ss.sentinels = append(ss.sentinels, startServerWith(tb, &Server{tb: tb, bin: bin, dir: dir, sentinelConf: conf}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ss.settled(ctx, opt.Replicas, opt.Sentinels); err != nil {
		tb.Fatalf("redistest: Sentinels not ready: %v", err)
	}
	return ss
}

// settled waits until every replica's link is up and every Sentinel sees
// the replicas and the other Sentinels.
func (ss *Sentinels) settled(ctx context.Context, replicas, sentinels int) error {
	for _, r := range ss.servers[1:] {
		c := redis.NewClient(&redis.Options{Addr: r.Addr()})
		err := poll(ctx, func() (bool, error) {
			info, err := c.Info(ctx, "replication").Result()
			return strings.Contains(info, "master_link_status:up"), err
		})
		c.Close()
		if err != nil {
			return fmt.Errorf("replica %s: %w", r.Addr(), err)
		}
	}
	for _, s := range ss.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
		err := poll(ctx, func() (bool, error) {
			m, err := c.Master(ctx, SentinelMaster).Result()
			if err != nil {
				return false, err
			}
			return m["num-slaves"] == strconv.Itoa(replicas) && m["num-other-sentinels"] == strconv.Itoa(sentinels-1), nil
		})
		c.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", s.Addr(), err)
		}
	}
	return nil
}

// poll calls cond every 20 ms until it holds or ctx ends.
func poll(ctx context.Context, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// SentinelAddrs returns the Sentinels' host:port.
func (ss *Sentinels) SentinelAddrs() []string {
	out := make([]string, len(ss.sentinels))
	for i, s := range ss.sentinels {
		out[i] = s.Addr()
	}
	return out
}

// URL returns the redis+sentinel:// URL of the master through every
// Sentinel.
func (ss *Sentinels) URL() string {
	return "redis+sentinel://" + strings.Join(ss.SentinelAddrs(), ",") + "/" + SentinelMaster
}

// Servers returns the master and the replicas as started (the first is the
// first master).
func (ss *Sentinels) Servers() []*Server { return append([]*Server(nil), ss.servers...) }

// Master returns the server the Sentinels currently name as master.
func (ss *Sentinels) Master(ctx context.Context) (*Server, error) {
	addr, err := ss.masterAddr(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range ss.servers {
		if s.Addr() == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("the Sentinels name %s, not one of the servers", addr)
}

// masterAddr asks the Sentinels, in turn, for the master's address.
func (ss *Sentinels) masterAddr(ctx context.Context) (string, error) {
	var last error
	for _, s := range ss.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
		a, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		c.Close()
		if err == nil && len(a) == 2 {
			return net.JoinHostPort(a[0], a[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no Sentinel names a master: %v", last)
}

// WaitFailover waits until the Sentinels name a master other than old and
// it answers as a master, and returns it.
func (ss *Sentinels) WaitFailover(ctx context.Context, old *Server) (*Server, error) {
	var next *Server
	err := poll(ctx, func() (bool, error) {
		m, err := ss.Master(ctx)
		if err != nil || m == old {
			return false, err
		}
		c := redis.NewClient(&redis.Options{Addr: m.Addr()})
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "role:master") {
			return false, err
		}
		next = m
		return true, nil
	})
	return next, err
}
