package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/streamsession/streamsession/service"
)

type serveOptions struct {
	Addr       string
	ConfigPath string
	// Node holds the settings of the command line that the configuration
	// file does not: Redis, the secret, the metrics address, the shutdown
	// bounds and -cors-origin.
	Node service.Config
	// CORSOrigins, when not nil (-cors-origin given), replaces the
	// configuration's cors_origins.
	CORSOrigins []string
	// NoMedia (-media=false) turns media off whatever the configuration
	// says; Node.Media's other fields replace the configuration's when set.
	NoMedia bool
	// Collectors are registered beside the node's metrics (the logs').
	Collectors []prometheus.Collector
}

// serve builds the node of the configuration (package service), prints the
// banner and serves until ctx is done, then ends the node (see
// service.Node.Serve).
func serve(ctx context.Context, opts serveOptions, stdout io.Writer, logger *slog.Logger) error {
	cfg := service.Demo()
	if opts.ConfigPath != "" {
		var err error
		if cfg, err = service.Load(opts.ConfigPath); err != nil {
			return err
		}
	}
	if opts.CORSOrigins != nil {
		cfg.CORSOrigins = opts.CORSOrigins
	}
	waitReplicas := cfg.Redis.WaitReplicas // the file's redis_wait_replicas
	cfg.Redis, cfg.Secret = opts.Node.Redis, opts.Node.Secret
	cfg.Redis.WaitReplicas = waitReplicas
	cfg.MetricsAddr, cfg.Shutdown = opts.Node.MetricsAddr, opts.Node.Shutdown
	if opts.Node.AdminAddr != "" {
		cfg.AdminAddr = opts.Node.AdminAddr
	}
	if opts.Node.PublicURL != "" {
		cfg.PublicURL = strings.TrimRight(opts.Node.PublicURL, "/")
	}
	applyMediaFlags(&cfg.Media, opts.Node.Media, opts.NoMedia)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(opts.Collectors...)
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return err
	}
	if cfg.Media.Enabled && cfg.Redis.Addr != "" && cfg.Media.NodeURL == "" {
		if cfg.Media.NodeURL, err = nodeURL(ln.Addr()); err != nil {
			_ = ln.Close()
			return err
		}
	}
	node, err := service.New(ctx, cfg, service.Options{Logger: logger, Registry: reg})
	if err != nil {
		_ = ln.Close()
		return err
	}
	if a := node.AdminAddr(); a != nil {
		fmt.Fprintf(stdout, "metrics on http://%s/metrics (and /healthz, /readyz)\n", a)
	}
	printBanner(stdout, "http://"+ln.Addr().String(), cfg)
	if node.Media != nil {
		fmt.Fprintf(stdout, "  media: WebRTC on udp %s (streaming.new answers an offer)\n", node.Media.UDPAddr())
	}
	return node.Serve(ctx, ln)
}

// applyMediaFlags lays the command line's media settings over the
// configuration's: what the flags set replaces the file's, and off
// (-media=false) turns media off.
func applyMediaFlags(m *service.MediaConfig, flags service.MediaConfig, off bool) {
	if off {
		m.Enabled = false
	}
	if flags.UDPAddr != "" {
		m.UDPAddr = flags.UDPAddr
	}
	if flags.PublicIP != "" {
		m.PublicIP = flags.PublicIP
	}
	if flags.NodeURL != "" {
		m.NodeURL = strings.TrimRight(flags.NodeURL, "/")
	}
}

// nodeURL is the base URL other nodes reach this one at for media
// (media.node_url) when neither the file nor -media-node-url says: the
// listen address when it names one IP address. A wildcard address (every
// interface) does not tell the other nodes which one reaches this node, so
// it is an error that asks for -media-node-url.
func nodeURL(addr net.Addr) (string, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP == nil || tcp.IP.IsUnspecified() {
		return "", fmt.Errorf("media with -redis: the listen address %s does not tell the other nodes where this node is; set -media-node-url (or media.node_url), or -media=false", addr)
	}
	return "http://" + addr.String(), nil
}

// printBanner tells a newcomer what to do next. API keys are printed only
// for the built-in demo configuration, whose keys are public.
func printBanner(w io.Writer, base string, cfg *service.Config) {
	fmt.Fprintf(w, "streamsession server listening on %s\n", base)
	fmt.Fprintf(w, "  page: %s/  (the live session console)\n", base)
	fmt.Fprintf(w, "  API:  %s/v1/ (HeyGen Streaming API compatible)\n", base)
	key := "YOUR_API_KEY"
	if cfg.IsDemo() {
		fmt.Fprintln(w, "  demo API keys:")
		for _, a := range cfg.Accounts {
			fmt.Fprintf(w, "    %-16s account %s, plan %s\n", a.APIKey, a.Name, a.Plan.Name)
		}
		if len(cfg.Accounts) > 0 {
			key = cfg.Accounts[len(cfg.Accounts)-1].APIKey
		}
	} else {
		fmt.Fprintf(w, "  %d accounts from the configuration file\n", len(cfg.Accounts))
	}
	fmt.Fprintln(w, "  try:")
	fmt.Fprintf(w, "    curl -s -X POST %s/v1/streaming.new -H 'X-Api-Key: %s' -H 'Content-Type: application/json' -d '{}'\n", base, key)
	fmt.Fprintf(w, "    go run ./examples/streaming -client -key %s -url %s\n", key, base)
}
