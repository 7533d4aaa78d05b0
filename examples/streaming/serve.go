package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	sserrors "github.com/streamsession/streamsession/errors"
	"github.com/streamsession/streamsession/server"
	"github.com/streamsession/streamsession/server/config"
	"github.com/streamsession/streamsession/session"
)

// shutdownTimeout bounds the graceful shutdown after SIGINT or SIGTERM.
const shutdownTimeout = 5 * time.Second

type serveOptions struct {
	Addr       string
	ConfigPath string
}

// serve runs the server until ctx is done, then shuts it down gracefully.
func serve(ctx context.Context, opts serveOptions, stdout io.Writer, logger *slog.Logger) error {
	cfg := config.Demo()
	if opts.ConfigPath != "" {
		var err error
		if cfg, err = config.Load(opts.ConfigPath); err != nil {
			return err
		}
	}
	svc, err := config.NewService(cfg, config.Options{Server: server.Config{Hooks: serverHooks(logger)}})
	if err != nil {
		return err
	}
	// Transitions are logged from a subscription (its own goroutine), so a
	// slow log never holds a session.
	svc.Manager.Subscribe(func(ev session.Event) {
		logger.Info("transition", "account", ev.Account, "session", server.ShortHash(ev.SessionID),
			"from", ev.From.String(), "to", ev.To.String(), "reason", ev.Reason.String())
	})

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		_ = svc.Shutdown(context.Background())
		return err
	}
	base := "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/v1/", svc.Server)
	mux.Handle("/", homePage(base))
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	printBanner(stdout, base, cfg, opts.ConfigPath == "")
	logger.Info("listening", "addr", ln.Addr().String(), "accounts", len(cfg.Accounts), "capacity", cfg.Capacity)

	select {
	case <-ctx.Done():
	case err := <-served:
		_ = svc.Shutdown(context.Background())
		return err
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Stop accepting and let requests in flight finish, then close every
	// session (sockets receive closing and closed), the sockets and the
	// limiter.
	errHTTP := hs.Shutdown(sctx)
	errSvc := svc.Shutdown(sctx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		errHTTP = errors.Join(errHTTP, err)
	}
	if err := errors.Join(errHTTP, errSvc); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

func serverHooks(logger *slog.Logger) server.Hooks {
	return server.Hooks{
		SocketOpened: func(s server.SocketInfo) {
			logger.Info("socket opened", "account", s.Account, "session", s.SessionHash)
		},
		SocketClosed: func(s server.SocketInfo) {
			logger.Info("socket closed", "account", s.Account, "session", s.SessionHash)
		},
		Refused: func(r server.Refusal) {
			logger.Info("refused", "endpoint", r.Endpoint, "account", r.Account, "session", r.SessionHash,
				"code", int(r.Code), "status", r.Status)
		},
	}
}

// printBanner tells a newcomer what to do next. API keys are printed only
// for the built-in demo configuration, whose keys are public.
func printBanner(w io.Writer, base string, cfg *config.Config, demo bool) {
	fmt.Fprintf(w, "streamsession server listening on %s\n", base)
	fmt.Fprintf(w, "  page: %s/\n", base)
	fmt.Fprintf(w, "  API:  %s/v1/ (HeyGen Streaming API compatible)\n", base)
	key := "YOUR_API_KEY"
	if demo {
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

// homePage answers "/" with a short pointer to the API (a console page will
// replace it) and every other path outside /v1/ with the JSON 404.
func homePage(base string) http.Handler {
	b := html.EscapeString(base)
	page := `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>streamsession</title></head>
<body>
<h1>streamsession</h1>
<p>A HeyGen-compatible Streaming API server. The API is under <code>` + b + `/v1/</code>.</p>
<pre>
curl -s -X POST ` + b + `/v1/streaming.new -H 'X-Api-Key: demo-pro-key' -H 'Content-Type: application/json' -d '{}'
go run ./examples/streaming -client -key demo-pro-key -url ` + b + `
</pre>
</body></html>
`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			sserrors.Write(w, sserrors.ErrResourceNotFound)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			sserrors.Write(w, sserrors.ErrResourceNotFound.WithStatus(http.StatusMethodNotAllowed))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	})
}
