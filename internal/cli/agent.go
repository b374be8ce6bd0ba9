package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/internal/fsutil"
	"github.com/credhelper/credhelper/protocols/envexec"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

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
/run/user/$UID/credhelper/agent.sock, else
$XDG_STATE_HOME/credhelper/agent/agent.sock (~/.local/state/...), and only
without a home /tmp/credhelper-$UID/agent.sock ($CREDHELPER_AGENT_SOCKET,
[agent] socket in the config file, or --socket override it): its directory is 0700, the socket
0600, and connections from other users are refused (SO_PEERCRED). Refresh
tokens never leave the agent.

Profiles with [[profiles.NAME.sink]] entries also have their auth token
written to files (token, env, json or a Go template), atomically, at start
and on every new generation, with an optional command run after each write;
a sink never holds a pair with less than min_validity left.

SIGHUP (or 'credhelper agent reload') re-reads the config file: new profiles
start, removed ones stop, changed ones restart; an invalid file is logged and
the running configuration kept.

With --metrics-addr (unix:PATH, a 0600 socket, or a loopback host:port,
which every local user can read) it serves Prometheus metrics at
/metrics: refresh events per profile and event, seconds to expiry and
generation per profile, sink writes and failures, and requests answered. On SIGTERM it stops
accepting, finishes requests in flight, closes every engine (which finishes
a refresh in flight and makes a last attempt at a pending commit) and
removes the socket.`,
		Example: `  credhelper agent
  credhelper agent --profiles prod,staging --metrics-addr 127.0.0.1:9464 --log-format json
  credhelper get --profile prod       # answered by the agent while it runs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.setSignals(signalsStopService)
			return a.runAgent(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.socket, "socket", "", "unix socket path (default $CREDHELPER_AGENT_SOCKET, [agent] socket, or $XDG_RUNTIME_DIR/credhelper/agent.sock)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on unix:PATH (mode 0600) or a loopback host:port (default $"+config.EnvAgentMetricsAddr+" or [agent] metrics_addr; off if empty)")
	fl.StringVar(&f.profiles, "profiles", "", "comma-separated profiles to serve (default: every profile in the config file)")
	fl.StringVar(&f.logFormat, "log-format", "text", "stderr log format: text or json")
	cmd.AddCommand(a.agentReloadCommand())
	return cmd
}

func (a *app) agentReloadCommand() *cobra.Command {
	var (
		socket  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make the running agent re-read its config file (as SIGHUP does) and report the outcome",
		Long: `reload finds the agent that answers on the socket, sends it SIGHUP and waits
until it has re-read its config file: new profiles start, removed ones stop
(a refresh in flight finishes and commits first), changed ones restart, and
unchanged ones run on untouched. An invalid config file is refused with the
reason (and its line, for a syntax error), and the agent keeps serving the
previous one; reload then exits 1.`,
		Example: `  credhelper agent reload
  systemctl --user reload credhelper-agent   # ExecReload=kill -HUP $MAINPID does the same`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.agentReload(cmd.Context(), socket, timeout)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "the agent's unix socket (default as for credhelper agent)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the agent to finish reloading")
	return cmd
}

// agentReload signals the agent that answers on the socket and waits for
// its reload count to move.
func (a *app) agentReload(ctx context.Context, socket string, timeout time.Duration) error {
	cfgSocket := ""
	if cfg, err := a.loadConfig(); err == nil {
		cfgSocket = expandHome(cfg.Agent.Socket)
	}
	c := agent.Client{Path: cmp.Or(socket, os.Getenv(agent.SocketEnv), cfgSocket, agent.DefaultSocketPath())}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	before, err := c.Ping(ctx)
	if err != nil {
		return fmt.Errorf("agent reload: no agent answers on %s: %w", c.Path, err)
	}
	proc, err := os.FindProcess(before.PID)
	if err == nil {
		err = proc.Signal(syscall.SIGHUP)
	}
	if err != nil {
		return fmt.Errorf("agent reload: signal the agent (pid %d): %w", before.PID, err)
	}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent reload: the agent (pid %d) did not finish reloading within %v", before.PID, timeout)
		case <-time.After(20 * time.Millisecond):
		}
		now, err := c.Ping(ctx)
		if err != nil || now.Reloads <= before.Reloads {
			continue
		}
		if now.ReloadError != "" {
			return fmt.Errorf("agent reload: %s", now.ReloadError)
		}
		fmt.Fprintf(a.stdout, "credhelper: agent (pid %d) reloaded its configuration\n", now.PID)
		return nil
	}
}

// agentProfile is one profile the agent serves, the settings it was built
// from, and what must be closed when it stops.
type agentProfile struct {
	w       *wired // w.profile: the merged settings it was built from
	e       *refresh.Engine
	plugins map[string]config.Plugin // the plugin definitions it uses
	served  server.Profile
}

// close closes the engine (which finishes a refresh in flight and commits
// it) and then the backend and issuer.
func (p *agentProfile) close(log *slog.Logger) error {
	err := p.e.Close()
	if err != nil {
		log.Error("agent: closing profile "+p.w.name+": "+err.Error(), slog.String("profile", p.w.name))
	}
	p.w.Close()
	return err
}

// agentRun is a running agent's profiles and what reload needs.
type agentRun struct {
	a       *app
	f       agentFlags
	metrics *server.Metrics
	clock   *server.Clock // every engine's; the server advances it
	srv     *server.Server

	profiles map[string]*agentProfile // touched by start-up, then reload only
	closing  sync.WaitGroup           // profiles a reload retired, closing

	// protected is what no sink may overwrite, for the config file read
	// as protectedOf (start-up, then reload only).
	protectedOf *config.File
	protected   map[string]string
}

func (a *app) runAgent(ctx context.Context, f agentFlags) (err error) {
	if err := agent.Supported(); err != nil {
		return err // before any profile is opened: nothing to undo
	}
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
	names, err := agentNames(cfg, f.profiles)
	if err != nil {
		return err
	}
	if err := cfg.AgentProblems(); err != nil {
		return usageError{err}
	}
	socket := agentSocketPath(cfg, f.socket)
	metricsAddr, err := agentMetricsAddr(cfg, f.metricsAddr)
	if err != nil {
		return err
	}
	cfgPath, err := absConfigPath(cfg)
	if err != nil {
		return err
	}
	// The socket path first: a second agent started by mistake stops
	// here, before it opens a profile, writes a sink or runs its command.
	reserved, err := agent.Reserve(socket)
	if err != nil {
		return err
	}
	defer reserved.Release() // a no-op once listening

	if os.Getenv("GOGC") == "" {
		// The agent's live heap is small (about 7 KiB a profile) and its
		// garbage comes in bursts (warm-up, a round of refreshes): the
		// default GOGC of 100 lets the heap double before collecting,
		// which at 1,000 profiles would add ~7 MiB resident for nothing.
		// Collecting at +25% costs a few ms of CPU per round of refreshes.
		debug.SetGCPercent(25)
	}
	run := &agentRun{a: a, f: f, metrics: server.NewMetrics(), clock: server.NewClock(), profiles: map[string]*agentProfile{}}
	a.shareClients()
	defer func() {
		// Engines first: Close finishes a refresh in flight and retries a
		// pending commit, which may need the backend and issuer.
		run.closing.Wait()
		for _, name := range slices.Sorted(maps.Keys(run.profiles)) {
			if cerr := run.profiles[name].close(a.logger); cerr != nil && err == nil {
				err = cerr
			}
		}
		if len(run.profiles) > 0 {
			a.logger.Info("agent: stopped")
		}
	}()
	var profiles []server.Profile
	var unusable []error
	for _, name := range names {
		if _, _, err := a.resolve(name); err != nil {
			// A mistake in one profile's settings leaves the others
			// served; a caller asking for it resolves it itself and is
			// told the mistake.
			unusable = append(unusable, fmt.Errorf("profile %q: %w", name, err))
			a.logger.Error("agent: not serving profile "+strconv.Quote(name)+": "+oneLine(message(err)), slog.String("profile", name))
			continue
		}
		ap, err := run.open(cfg, name)
		if err != nil {
			// So does one that cannot be opened (a sink it may not write,
			// a plugin that fails its pin or is not defined).
			unusable = append(unusable, fmt.Errorf("profile %q: %w", name, err))
			a.logger.Error("agent: not serving profile "+strconv.Quote(name)+": "+oneLine(message(err)), slog.String("profile", name))
			continue
		}
		run.profiles[name] = ap
		profiles = append(profiles, ap.served)
	}
	switch {
	case len(profiles) == 0 && len(unusable) > 0:
		return fmt.Errorf("agent: no profile can be served: %w", errors.Join(unusable...))
	case f.profiles != "" && len(unusable) > 0:
		// Profiles named on the command line are what the agent was
		// started for: one that cannot be served is a mistake to fix, not
		// to skip.
		return usageError{fmt.Errorf("agent: --profiles names a profile that cannot be served (fix it, or leave it out of --profiles): %w", errors.Join(unusable...))}
	}
	srv, err := server.New(profiles, func(o *server.Options) {
		o.Logger, o.Metrics, o.ConfigPath, o.Version, o.Clock = a.logger, run.metrics, cfgPath, version, run.clock
	})
	if err != nil {
		return usageError{err}
	}
	run.srv = srv
	// Each profile keeps its own merged settings; the parsed file is not
	// needed until a reload reads it again.
	a.cfg = nil
	// Warm every profile (in parallel, bounded) before the socket appears,
	// so that the first caller is answered from memory and sinks are
	// written; a profile that fails now is logged and retried by its
	// keeper.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	t0 := time.Now()
	srv.Warm(wctx)
	cancel()
	a.logger.Info("agent: profiles warmed", slog.Int("profiles", len(profiles)), slog.Duration("took", time.Since(t0)))
	// Warming (and each reload) leaves garbage that a long-lived, mostly
	// idle process would otherwise keep resident until the heap doubled:
	// collect it and return the pages now.
	debug.FreeOSMemory()
	ln, err := reserved.Listen()
	if err != nil {
		return err
	}
	if metricsAddr != "" {
		stop, err := a.serveMetrics(metricsAddr, run.metrics)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	stopReload := run.onReload(ctx)
	defer stopReload()
	a.logger.Info("agent: serving", slog.String("socket", ln.Path()), slog.Int("profiles", len(profiles)), slog.Int("not_served", len(unusable)),
		slog.String("metrics_addr", metricsAddr), slog.Int("pid", os.Getpid()), slog.String("config", cfgPath))
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	a.logger.Info("agent: stopped accepting; closing engines")
	return nil
}

// agentSocketPath is the agent's socket: --socket, else $CREDHELPER_AGENT_SOCKET,
// else [agent] socket, else the default.
func agentSocketPath(cfg *config.File, flag string) string {
	return cmp.Or(flag, os.Getenv(agent.SocketEnv), expandHome(cfg.Agent.Socket), agent.DefaultSocketPath())
}

// agentMetricsAddr is where the agent serves metrics: --metrics-addr,
// else $CREDHELPER_AGENT_METRICS_ADDR, else [agent] metrics_addr; "" for
// none. An address others could reach is refused, named as it was set.
func agentMetricsAddr(cfg *config.File, flag string) (string, error) {
	addr, from := flag, "--metrics-addr"
	switch {
	case addr != "":
	case os.Getenv(config.EnvAgentMetricsAddr) != "":
		addr, from = os.Getenv(config.EnvAgentMetricsAddr), "$"+config.EnvAgentMetricsAddr
	default:
		addr, from = cfg.Agent.MetricsAddr, "metrics_addr in [agent]"
		if line := cfg.Line("agent", "metrics_addr"); cfg.Path != "" && line > 0 {
			from += fmt.Sprintf(" (%s:%d)", cfg.Path, line)
		}
	}
	if addr != "" && !strings.HasPrefix(addr, "unix:") && !provider.LoopbackAddr(addr) {
		return "", usagef("agent: %s %q must be a loopback host:port such as 127.0.0.1:9464 (readable by every local user) or unix:PATH (readable by you alone): metrics are not served to the network", from, addr)
	}
	return addr, nil
}

// agentNames is every profile of cfg, or those --profiles names.
func agentNames(cfg *config.File, only string) ([]string, error) {
	names := cfg.ProfileNames()
	if only != "" {
		names = nil
		for _, n := range strings.Split(only, ",") {
			if n = strings.TrimSpace(n); n != "" {
				if _, ok := cfg.Profiles[n]; !ok {
					return nil, usagef("agent: --profiles names %q, which is not a profile of %s", n, configName(cfg.Path))
				}
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return nil, usagef("agent: no profiles to serve: add [profiles.NAME] sections to %s", configName(cfg.Path))
	}
	return names, nil
}

func absConfigPath(cfg *config.File) (string, error) {
	if cfg.Path == "" {
		return "", nil
	}
	p, err := filepath.Abs(cfg.Path)
	if err != nil {
		return "", fmt.Errorf("agent: config path: %w", err)
	}
	return p, nil
}

// open wires one profile of cfg: backend, issuer, engine and sinks.
func (r *agentRun) open(cfg *config.File, name string) (*agentProfile, error) {
	a := r.a
	a.cfg = cfg
	w, err := a.wire(context.Background(), name)
	if err != nil {
		return nil, err
	}
	var minValidity time.Duration
	e, err := a.engine(w, func(o *refresh.Options) {
		o.Logger = a.logger.With(slog.String("profile", w.name))
		o.Metrics = r.metrics.Engine(w.name)
		o.Clock = r.clock           // no coarse-clock ticker: the server ticks it
		minValidity = o.MinValidity // after every setting and default
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	var protected map[string]string
	if len(w.profile.Sink) > 0 {
		protected = r.protectedPaths(cfg)
	}
	sinks, err := sinkSpecs(*w.profile, protected, agentSocketPath(cfg, r.f.socket))
	if err != nil {
		e.Close()
		w.Close()
		return nil, err
	}
	// Wired: the profile keeps its own settings, not the whole parsed
	// file (1,000 profiles would each hold it; a reload reads it afresh).
	w.cfg = nil
	return &agentProfile{
		w: w, e: e, plugins: usedPlugins(cfg, *w.profile),
		served: server.Profile{Name: name, Provider: e, Endpoint: w.profile.Endpoint, Keep: true, Sinks: sinks, MinValidity: minValidity},
	}, nil
}

// usedPlugins returns the definitions of the plugins p's backend and
// issuer name, so that a reload restarts p when one of them changes.
func usedPlugins(cfg *config.File, p config.Profile) map[string]config.Plugin {
	var out map[string]config.Plugin // nil for most profiles: no map each
	for _, spec := range []string{p.Backend, p.Issuer} {
		if rest, ok := strings.CutPrefix(spec, "plugin:"); ok {
			name, _, _ := strings.Cut(rest, ":")
			if out == nil {
				out = map[string]config.Plugin{}
			}
			out[name] = cfg.Plugins[name]
		}
	}
	return out
}

// sinkSpecs turns the profile's [[sink]] entries into the server's specs;
// a template file is read now, so a mistake shows at start or reload. A
// sink may not overwrite what credhelper keeps (protected), nor be
// readable by every user, nor take its template from a file another user
// could have written.
func sinkSpecs(p config.Profile, protected map[string]string, socket string) ([]server.SinkSpec, error) {
	var out []server.SinkSpec
	var problems []error // one per sink, so config check lists them all
	dirs := sinkForbiddenDirs(p, socket)
	for _, s := range p.Sink {
		spec, err := sinkSpec(p, s, protected, dirs)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		out = append(out, spec)
	}
	if len(problems) > 0 {
		return nil, usageError{errors.Join(problems...)}
	}
	return out, nil
}

// sinkSpec is one [[sink]] entry as the server's spec, or why the agent
// refuses it.
func sinkSpec(p config.Profile, s config.Sink, protected map[string]string, dirs forbiddenDirs) (server.SinkSpec, error) {
	if err := s.Check(); err != nil {
		return server.SinkSpec{}, usageError{err}
	}
	mode, _ := s.FileMode() // checked
	if mode&0o027 != 0 {
		return server.SinkSpec{}, usagef("sink %s: mode %04o lets others read the token or group members change it: use 0600, or 0640 for a reader in the file's group", s.Path, mode)
	}
	if what, ok := protected[samePathKey(expandHome(s.Path))]; ok {
		return server.SinkSpec{}, usagef("sink %s: path is %s, which the sink would overwrite: give the sink a file of its own", s.Path, what)
	}
	sinkDir := samePathKey(filepath.Dir(expandHome(s.Path)))
	if what, ok := dirs.direct[sinkDir]; ok {
		return server.SinkSpec{}, usagef("sink %s: the file would be in %s, which credhelper keeps to itself: put the sink in a directory of its own", s.Path, what)
	}
	for dir := sinkDir; ; dir = filepath.Dir(dir) {
		if what, ok := dirs.tree[dir]; ok {
			return server.SinkSpec{}, usagef("sink %s: the file would be in %s, which credhelper keeps to itself: put the sink in a directory of its own", s.Path, what)
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	spec := server.SinkSpec{
		Path: expandHome(s.Path), Format: s.Format, Template: s.Template, Mode: mode,
		Command: s.Command, CommandTimeout: s.CommandTimeout.Duration, Remove: s.OnExpiry == config.SinkExpiryRemove,
	}
	if s.Format == config.SinkEnv {
		spec.EnvVars = envexec.DefaultVars()
		if p.Env.TokenVar != "" {
			spec.EnvVars.Token = p.Env.TokenVar
		}
		if p.Env.EndpointVar != "" {
			spec.EnvVars.Endpoint = p.Env.EndpointVar
		}
		spec.EnvVars.Expiry = p.Env.ExpiryVar
	}
	if s.TemplateFile != "" {
		b, err := fsutil.ReadFile(expandHome(s.TemplateFile), fsutil.Rule{What: "sink template file", MaxSize: 1 << 20})
		if err != nil {
			return server.SinkSpec{}, usagef("sink %s: template_file: %v", s.Path, err)
		}
		spec.Template, spec.TemplateName = string(b), filepath.Base(s.TemplateFile)
	}
	if err := spec.Check(); err != nil {
		return server.SinkSpec{}, usageError{err}
	}
	return spec, nil
}

// forbiddenDirs are where credhelper keeps files of its own, by
// samePathKey: no sink may be directly in a direct one (the agent's socket
// directory, which may be a directory of other uses, such as the home
// directory for --socket ~/agent.sock: a sink there could take the
// socket's name), nor anywhere under a tree one (the journal and the
// background refreshers' directories, credhelper's alone: a sink there
// could take an entry's or a lock's name, or be taken for an entry).
type forbiddenDirs struct{ direct, tree map[string]string }

func sinkForbiddenDirs(p config.Profile, socket string) forbiddenDirs {
	out := forbiddenDirs{direct: map[string]string{}, tree: map[string]string{}}
	if socket != "" {
		out.direct[samePathKey(filepath.Dir(socket))] = "the agent's socket directory"
	}
	def, _ := refresh.DefaultJournalDir() // "" when there is no state directory
	if journal := cmp.Or(expandHome(p.JournalDir), def); journal != "" {
		out.tree[samePathKey(journal)] = "the journal directory"
	}
	if dir, err := refresherPath(); err == nil {
		out.tree[samePathKey(dir)] = "the background refreshers' directory"
	}
	return out
}

// protectedPaths lists what credhelper itself keeps, which no sink may
// overwrite: the config file, every profile's credential file and its
// lock, keyed by samePathKey, with what each is. It is worked out once per
// config file read (start, each reload), not once per profile.
func (r *agentRun) protectedPaths(cfg *config.File) map[string]string {
	if r.protectedOf == cfg {
		return r.protected
	}
	out := map[string]string{}
	r.protectedOf, r.protected = cfg, out
	if cfg.Path != "" {
		out[samePathKey(cfg.Path)] = "the config file"
	}
	for name, prof := range cfg.Profiles {
		if path, ok := strings.CutPrefix(prof.Backend, "file:"); ok && path != "" {
			path = expandHome(path)
			out[samePathKey(path)] = fmt.Sprintf("the credential file of profile %q", name)
			out[samePathKey(path+".lock")] = fmt.Sprintf("the lock of profile %q's credential file", name)
		}
	}
	return out
}

// samePathKey is path made absolute, with the links of its directory
// resolved where they exist, so two spellings of one file compare equal.
func samePathKey(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(dir, filepath.Base(abs))
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return abs
}

// onReload reloads the configuration on each SIGHUP until ctx ends or the
// returned stop is called.
func (r *agentRun) onReload(ctx context.Context) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-hup:
				r.reload()
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}

// reload re-reads the configuration and applies it: new profiles start,
// removed ones stop, changed ones restart, unchanged ones run on
// untouched. A configuration that cannot be read or wired is logged and
// the running one kept.
func (r *agentRun) reload() {
	a := r.a
	t0 := time.Now()
	err := r.apply()
	var partial *partialReloadError
	switch {
	case errors.As(err, &partial):
		a.logger.Error("agent: "+oneLine(err.Error()), slog.Duration("took", time.Since(t0)))
	case err != nil:
		err = fmt.Errorf("refused, still serving the previous configuration: %w", err)
		a.logger.Error("agent: reload "+oneLine(err.Error()), slog.Duration("took", time.Since(t0)))
	}
	r.srv.Reloaded(err)
}

func (r *agentRun) apply() error {
	a, t0 := r.a, time.Now()
	prev := a.cfg
	a.cfg = nil
	cfg, err := a.loadConfig()
	if err != nil {
		a.cfg = prev
		return err
	}
	a.cfg = cfg // profileSettings and wire read it
	names, err := agentNames(cfg, r.f.profiles)
	if err != nil {
		a.cfg = prev
		return err
	}
	next := make(map[string]*agentProfile, len(names))
	var opened []*agentProfile
	fail := func(err error) error {
		for _, p := range opened {
			p.close(a.logger)
		}
		a.cfg = prev
		return err
	}
	var profiles []server.Profile
	added, changed := 0, 0
	var partial partialReloadError
	for _, name := range names {
		cur := r.profiles[name]
		res, _, err := a.resolve(name)
		if err != nil {
			// A mistake in one profile's new settings leaves the others
			// reloaded; the profile keeps its running settings, if it
			// had any, as the whole agent would keep a file it cannot
			// read.
			partial.add(name, cur != nil, err)
			if cur != nil {
				next[name] = cur
				profiles = append(profiles, cur.served)
			}
			continue
		}
		settings := res.Profile
		if cur != nil && reflect.DeepEqual(*cur.w.profile, settings) && reflect.DeepEqual(cur.plugins, usedPlugins(cfg, settings)) {
			next[name] = cur
			profiles = append(profiles, cur.served)
			continue
		}
		ap, err := r.open(cfg, name)
		if err != nil {
			partial.add(name, cur != nil, err)
			if cur != nil {
				next[name] = cur
				profiles = append(profiles, cur.served)
			}
			continue
		}
		opened = append(opened, ap)
		next[name] = ap
		profiles = append(profiles, ap.served)
		if cur == nil {
			added++
		} else {
			changed++
		}
	}
	stale, err := r.srv.Update(profiles)
	if err != nil {
		return fail(err)
	}
	cfgPath, err := absConfigPath(cfg)
	if err == nil {
		err = r.srv.SetConfigPath(cfgPath)
	}
	if err != nil {
		a.logger.Warn("agent: reload: " + err.Error())
	}
	removed := 0
	for _, sp := range stale {
		old := r.profiles[sp.Name]
		if next[sp.Name] == nil {
			removed++
		}
		r.closing.Add(1)
		go func() {
			defer r.closing.Done()
			old.close(a.logger)
		}()
	}
	r.profiles = next
	a.cfg = nil // as at start: the profiles keep what they need
	debug.FreeOSMemory()
	a.logger.Info("agent: configuration reloaded", slog.Int("profiles", len(names)), slog.Int("added", added),
		slog.Int("changed", changed), slog.Int("removed", removed), slog.Duration("took", time.Since(t0)))
	if len(partial.profiles) > 0 {
		return &partial
	}
	return nil
}

// partialReloadError reports the profiles a reload could not apply
// because of mistakes in their new settings; every other profile was
// reloaded.
type partialReloadError struct {
	profiles []string
	errs     []error
}

func (e *partialReloadError) add(name string, running bool, err error) {
	what := "not started"
	if running {
		what = "kept its previous settings"
	}
	e.profiles = append(e.profiles, name)
	e.errs = append(e.errs, fmt.Errorf("profile %q %s: %s", name, what, oneLine(message(err))))
}

func (e *partialReloadError) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return "reloaded, except: " + strings.Join(msgs, "; ")
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
	l, err := server.ListenMetrics(addr)
	if err != nil {
		return nil, err
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
	if l.Addr().Network() == "unix" {
		a.logger.Info("agent: metrics at /metrics on unix:" + l.Addr().String())
	} else {
		a.logger.Info("agent: metrics at http://" + l.Addr().String() + "/metrics")
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, nil
}

func configName(path string) string {
	if path == "" {
		return "the config file (none found; set --config or $CREDHELPER_CONFIG)"
	}
	return path
}
