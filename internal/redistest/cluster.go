package redistest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// slotCount is the number of hash slots of a Redis Cluster.
const slotCount = 16384

// Cluster is a Redis Cluster of redis-server child processes, masters only,
// owned by one test or benchmark. It is safe for concurrent use by multiple
// goroutines.
type Cluster struct {
	nodes []*Server

	mu      sync.Mutex
	clients []*redis.ClusterClient
}

// StartCluster runs masters redis-server processes in cluster mode (each
// with Start's flags, its own free loopback ports and its cluster state in a
// temporary directory), gives master i the i-th of masters equal ranges of
// the 16384 hash slots, joins every pair with CLUSTER MEET and returns once
// every node reports cluster_state:ok, the same slot map and a connected
// cluster-bus link to every other node (so that pub/sub reaches every
// node from the first message). The processes, and
// every client from Client or NewClient, are stopped and closed when the
// test ends. Without redis-server on PATH, StartCluster calls tb.Skip, or
// tb.Fatal when the environment variable CI is non-empty. masters must be
// between 1 and 16384.
//
// Redis holds a master's first cluster_state:ok back until about two
// seconds after the process started (CLUSTER_WRITABLE_DELAY in its source),
// so a cluster takes a little over two seconds to start: tests should share
// one where they can, each under a key prefix of its own.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	if masters < 1 || masters > slotCount {
		tb.Fatalf("redistest: StartCluster(%d): want between 1 and %d masters", masters, slotCount)
	}
	bin := lookBinary(tb)
	c := &Cluster{}
	for range masters {
		c.nodes = append(c.nodes, startServer(tb, bin, true, Options{}))
	}
	// Registered after the nodes' cleanups, so it runs before them: the
	// clients close while their servers still answer.
	tb.Cleanup(c.closeClients)
	if err := c.form(); err != nil {
		tb.Fatalf("redistest: form a cluster of %d: %v%s", masters, err, c.logs())
	}
	return c
}

// Addrs returns the masters' host:port addresses on the loopback
// interface, master i first holding the i-th range of slots.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Client returns a new cluster client with go-redis's defaults except
// ContextTimeoutEnabled, which is on so that context deadlines bound socket
// reads. It is closed when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	return c.NewClient(&redis.ClusterOptions{ContextTimeoutEnabled: true})
}

// NewClient returns a new cluster client built from opt, whose Addrs is
// overwritten with the cluster's. It is closed when the test ends.
func (c *Cluster) NewClient(opt *redis.ClusterOptions) *redis.ClusterClient {
	o := *opt
	o.Addrs = c.Addrs()
	cc := redis.NewClusterClient(&o)
	c.mu.Lock()
	c.clients = append(c.clients, cc)
	c.mu.Unlock()
	return cc
}

// closeClients closes the cluster clients handed out. It runs as the
// test's cleanup, before the nodes stop.
func (c *Cluster) closeClients() {
	c.mu.Lock()
	clients := c.clients
	c.clients = nil
	c.mu.Unlock()
	for _, cc := range clients {
		_ = cc.Close()
	}
}

// slotRange is a range of slots and the address of the master serving it.
type slotRange struct {
	start, end int
	addr       string
}

// plan returns the slot map StartCluster builds: master i serves the i-th of
// len(c.nodes) equal ranges.
func (c *Cluster) plan() []slotRange {
	n := len(c.nodes)
	ranges := make([]slotRange, n)
	for i, node := range c.nodes {
		ranges[i] = slotRange{start: i * slotCount / n, end: (i+1)*slotCount/n - 1, addr: node.Addr()}
	}
	return ranges
}

// form assigns the slots, joins the nodes and waits, at most startTimeout,
// until every node is ok and agrees on the slot map.
func (c *Cluster) form() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	admins := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		// Closed with the node.
		admins[i] = n.NewClient(&redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1})
	}
	want := c.plan()
	for i, r := range want {
		if err := admins[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", r.start, r.end).Err(); err != nil {
			return fmt.Errorf("%s: CLUSTER ADDSLOTSRANGE %d %d: %w", r.addr, r.start, r.end, err)
		}
		// Distinct epochs, as redis-cli --cluster create sets them: no
		// node has to win a collision before the map settles.
		if err := admins[i].Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("%s: CLUSTER SET-CONFIG-EPOCH: %w", r.addr, err)
		}
	}
	// Every pair meets directly: gossip would introduce them too, but only
	// at its pace (a random node a second), which adds seconds to a start.
	for i, n := range c.nodes {
		for _, m := range c.nodes[i+1:] {
			if err := admins[i].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", m.port, m.busPort).Err(); err != nil {
				return fmt.Errorf("%s: CLUSTER MEET %s: %w", n.Addr(), m.Addr(), err)
			}
		}
	}
	// A readiness wait (gossip and Redis's writable delay), bounded by ctx.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.settled(ctx, admins, want)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not settled after %v: %w", startTimeout, err)
		case <-tick.C:
		}
	}
}

// settled returns nil when every node reports cluster_state:ok, a
// connected link to every other node and the slot map want, or what is
// still missing.
func (c *Cluster) settled(ctx context.Context, admins []*redis.Client, want []slotRange) error {
	for i, a := range admins {
		info, err := a.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", c.nodes[i].Addr(), err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state is not ok", c.nodes[i].Addr())
		}
		if err := c.linked(ctx, a); err != nil {
			return fmt.Errorf("%s: %w", c.nodes[i].Addr(), err)
		}
		slots, err := a.ClusterSlots(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER SLOTS: %w", c.nodes[i].Addr(), err)
		}
		got := make([]slotRange, 0, len(slots))
		for _, s := range slots {
			r := slotRange{start: s.Start, end: s.End}
			if len(s.Nodes) > 0 {
				r.addr = s.Nodes[0].Addr
			}
			got = append(got, r)
		}
		slices.SortFunc(got, func(a, b slotRange) int { return a.start - b.start })
		if !slices.Equal(want, got) {
			return fmt.Errorf("%s: slot map %v, want %v", c.nodes[i].Addr(), got, want)
		}
	}
	return nil
}

// linked returns nil when the node behind a knows every node of the
// cluster, none in handshake or suspected of failure, through a connected
// link. A node forwards a PUBLISH over these links and skips a node whose
// link is not up yet: a cluster whose slot map has settled may still drop
// the first messages of pub/sub without this wait.
func (c *Cluster) linked(ctx context.Context, a *redis.Client) error {
	nodes, err := a.ClusterNodes(ctx).Result()
	if err != nil {
		return fmt.Errorf("CLUSTER NODES: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(nodes), "\n")
	if len(lines) != len(c.nodes) {
		return fmt.Errorf("knows %d nodes, want %d", len(lines), len(c.nodes))
	}
	for _, l := range lines {
		// <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slots>...
		f := strings.Fields(l)
		if len(f) < 8 {
			return fmt.Errorf("CLUSTER NODES line %q", l)
		}
		for _, flag := range strings.Split(f[2], ",") {
			switch flag {
			case "handshake", "noaddr", "fail", "fail?":
				return fmt.Errorf("node %s is %s", f[1], flag)
			}
		}
		if f[7] != "connected" {
			return fmt.Errorf("link to node %s is %s", f[1], f[7])
		}
	}
	return nil
}

// logs returns the last lines of every node's log, for failure messages.
func (c *Cluster) logs() string {
	var b strings.Builder
	for _, n := range c.nodes {
		n.mu.Lock()
		p := n.proc
		n.mu.Unlock()
		if p != nil {
			fmt.Fprintf(&b, "\nlog of %s:\n%s", n.Addr(), p.lastLog())
		}
	}
	return b.String()
}
