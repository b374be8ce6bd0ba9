package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/refresh"
)

// metricsAddrEnv names the variable that sets --metrics-addr.
const metricsAddrEnv = "CREDHELPER_AGENT_METRICS_ADDR"

type agentFlags struct {
	socket, metricsAddr, profiles, logFormat string
}

func (a *app) agentCommand() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Keep every profile fresh ahead of expiry and serve local callers over a unix socket",
		Long: `agent runs until SIGTERM or SIGINT. It keeps every profile of the config file
(or those named by --profiles) fresh ahead of expiry through the refresh
engine, and answers get, status and ping on a unix socket, so that
'credhelper get' and every helper face answer from its cache without
touching the backend or the issuer. Callers use the agent whenever it runs
and serves their profile and config file, and resolve the credential
themselves otherwise (also when --backend or --issuer is given, or when
CREDHELPER_NO_AGENT is set).

The socket is $XDG_RUNTIME_DIR/credhelper/agent.sock, else
/tmp/credhelper-$UID/agent.sock ($CREDHELPER_AGENT_SOCKET, [agent] socket in
the config file, or --socket override it): its directory is 0700, the socket
0600, and connections from other users are refused (SO_PEERCRED). Refresh
tokens never leave the agent.

With --metrics-addr (a loopback address only) it serves Prometheus metrics at
/metrics: refresh events per profile and event, seconds to expiry and
generation per profile, and requests answered. On SIGTERM it stops
accepting, finishes requests in flight, closes every engine (which finishes
a refresh in flight and makes a last attempt at a pending commit) and
removes the socket.`,
		Example: `  credhelper agent
  credhelper agent --profiles prod,staging --metrics-addr 127.0.0.1:9464 --log-format json
  credhelper get --profile prod       # answered by the agent while it runs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runAgent(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.socket, "socket", "", "unix socket path (default $CREDHELPER_AGENT_SOCKET, [agent] socket, or $XDG_RUNTIME_DIR/credhelper/agent.sock)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this loopback host:port (default $"+metricsAddrEnv+" or [agent] metrics_addr; off if empty)")
	fl.StringVar(&f.profiles, "profiles", "", "comma-separated profiles to serve (default: every profile in the config file)")
	fl.StringVar(&f.logFormat, "log-format", "text", "stderr log format: text or json")
	return cmd
}

// agentProfile is one profile the agent serves and what it must close.
type agentProfile struct {
	w *wired
	e *refresh.Engine
}

func (a *app) runAgent(ctx context.Context, f agentFlags) (err error) {
	if a.backend != "" || a.issuer != "" {
		return usagef("agent: --backend and --issuer (and $CREDHELPER_BACKEND, $CREDHELPER_ISSUER) do not apply to the agent: it serves the profiles of the config file")
	}
	if err := a.agentLogger(f.logFormat); err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	a.cfg = cfg
	names := cfg.ProfileNames()
	if f.profiles != "" {
		names = nil
		for _, n := range strings.Split(f.profiles, ",") {
			if n = strings.TrimSpace(n); n != "" {
				if _, ok := cfg.Profiles[n]; !ok {
					return usagef("agent: --profiles names %q, which is not a profile of %s", n, configName(cfg.Path))
				}
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return usagef("agent: no profiles to serve: add [profiles.NAME] sections to %s", configName(cfg.Path))
	}
	socket := firstNonEmpty(f.socket, os.Getenv(agent.SocketEnv), expandHome(cfg.Agent.Socket), agent.DefaultSocketPath())
	metricsAddr := firstNonEmpty(f.metricsAddr, os.Getenv(metricsAddrEnv), cfg.Agent.MetricsAddr)
	if metricsAddr != "" {
		if host, _, err := net.SplitHostPort(metricsAddr); err != nil || !isLoopback(host) {
			return usagef("agent: --metrics-addr %q must be a loopback host:port such as 127.0.0.1:9464: metrics are not served to the network", metricsAddr)
		}
	}
	cfgPath := ""
	if cfg.Path != "" {
		if cfgPath, err = filepath.Abs(cfg.Path); err != nil {
			return fmt.Errorf("agent: config path: %w", err)
		}
	}

	metrics := server.NewMetrics()
	var (
		opened   []agentProfile
		profiles []server.Profile
	)
	defer func() {
		// Engines first: Close finishes a refresh in flight and retries a
		// pending commit, which may need the backend and issuer.
		for _, p := range opened {
			if cerr := p.e.Close(); cerr != nil {
				a.logger.Error("agent: closing profile "+p.w.name+": "+cerr.Error(), slog.String("profile", p.w.name))
				if err == nil {
					err = cerr
				}
			}
			p.w.Close()
		}
		if len(opened) > 0 {
			a.logger.Info("agent: stopped")
		}
	}()
	for _, name := range names {
		w, err := a.wire(ctx, name)
		if err != nil {
			return fmt.Errorf("agent: profile %q: %w", name, err)
		}
		e, err := a.engine(w, func(o *refresh.Options) {
			o.Logger = a.logger.With(slog.String("profile", w.name))
			o.Metrics = metrics.Engine(w.name)
		})
		if err != nil {
			w.Close()
			return fmt.Errorf("agent: profile %q: %w", name, err)
		}
		opened = append(opened, agentProfile{w: w, e: e})
		profiles = append(profiles, server.Profile{Name: name, Provider: e, Endpoint: w.profile.Endpoint, Keep: true})
	}
	// Warm every profile before the socket appears, so that the first
	// caller is answered from memory; a profile that fails now is logged and
	// retried by its keeper.
	for _, p := range opened {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if _, err := p.e.Credential(wctx); err != nil {
			a.logger.Warn("agent: profile "+p.w.name+" is not ready yet: "+err.Error(), slog.String("profile", p.w.name))
		}
		cancel()
	}
	srv, err := server.New(profiles, func(o *server.Options) {
		o.Logger, o.Metrics, o.ConfigPath, o.Version = a.logger, metrics, cfgPath, version
	})
	if err != nil {
		return err
	}
	ln, err := agent.Listen(socket)
	if err != nil {
		return err
	}
	if metricsAddr != "" {
		stop, err := a.serveMetrics(metricsAddr, metrics)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	a.logger.Info("agent: serving", slog.String("socket", ln.Path()), slog.Any("profiles", names),
		slog.String("metrics_addr", metricsAddr), slog.Int("pid", os.Getpid()), slog.String("config", cfgPath))
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	a.logger.Info("agent: stopped accepting; closing engines")
	return nil
}

// agentLogger replaces the logger with the agent's: info by default (a
// service's log is its record), text or JSON.
func (a *app) agentLogger(format string) error {
	level := slog.LevelInfo
	if a.logLevel != "" {
		if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
			return usagef("--log-level %q: use debug, info, warn or error", a.logLevel)
		}
	}
	ho := &slog.HandlerOptions{Level: level}
	switch format {
	case "text", "":
		a.logger = slog.New(slog.NewTextHandler(a.stderr, ho))
	case "json":
		a.logger = slog.New(slog.NewJSONHandler(a.stderr, ho))
	default:
		return usagef("--log-format %q: use text or json", format)
	}
	return nil
}

// serveMetrics serves /metrics on addr until the returned stop is called.
func (a *app) serveMetrics(addr string, m *server.Metrics) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("agent: metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("agent: metrics server: " + err.Error())
		}
	}()
	a.logger.Info("agent: metrics at http://" + l.Addr().String() + "/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func configName(path string) string {
	if path == "" {
		return "the config file (none found; set --config or $CREDHELPER_CONFIG)"
	}
	return path
}
