package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/provider"
)

// viaAgent asks a running agent for the profile's pair. ok is false when no
// agent answers, when it does not serve this profile of this config file,
// or when the caller chose a backend or issuer by flag or environment; the
// caller then resolves the credential directly. It is the first thing
// every credential lookup does, so it reads no config file unless no agent
// answers at the default socket.
func (a *app) viaAgent(ctx context.Context, profile string) (p provider.Pair, ok bool, err error) {
	if a.backend != "" || a.issuer != "" || os.Getenv(config.EnvNoAgent) != "" {
		return provider.Pair{}, false, nil
	}
	req := agent.Request{Profile: profile, Endpoint: a.endpoint, Config: a.agentConfigPath()}
	c := agent.Client{Path: agent.SocketPath()}
	get := func() (provider.Pair, error) {
		if c.Path == a.agentSilent {
			return provider.Pair{}, agent.Silent(c.Path) // the front waited for it already
		}
		return c.Get(ctx, req)
	}
	p, err = get()
	if errors.Is(err, agent.ErrUnavailable) && os.Getenv(agent.SocketEnv) == "" {
		// The config file may move the socket. Reading it costs nothing
		// extra: direct resolution, which comes next, reads it anyway.
		if cfg, cerr := a.loadConfig(); cerr == nil && cfg.Agent.Socket != "" {
			if alt := expandHome(cfg.Agent.Socket); alt != c.Path {
				c.Path = alt
				p, err = get()
			}
		}
	}
	switch {
	case errors.Is(err, agent.ErrSilent):
		a.logger.Warn("credhelper: " + err.Error() + "; resolving directly")
		return provider.Pair{}, false, nil
	case errors.Is(err, agent.ErrUnavailable), errors.Is(err, agent.ErrUnknownProfile):
		if perr := agent.SocketProblem(c.Path); perr != nil {
			// Another user may have created the socket's directory first.
			a.logger.Warn("credhelper: " + perr.Error())
		}
		a.logger.Debug("credhelper: resolving directly, not through the agent", "reason", err.Error())
		return provider.Pair{}, false, nil
	case err != nil && a.minValid.IsSet():
		// The agent works to the profile's min_validity; a caller who set
		// its own (--min-validity 0s, say) is answered by its own rule.
		a.logger.Debug("credhelper: the agent failed; resolving directly with --min-validity", "reason", err.Error())
		return provider.Pair{}, false, nil
	case err != nil:
		return provider.Pair{}, true, err
	}
	if a.minValid.IsSet() && !p.ValidFor(time.Now(), a.minValid.Duration) {
		// The agent's engine works to the profile's minimum validity; a
		// caller asking for more resolves it with its own.
		a.logger.Debug("credhelper: the agent's pair has less than --min-validity left; resolving directly")
		return provider.Pair{}, false, nil
	}
	return p, true, nil
}

// agentConfigPath is the absolute path of the config file this command
// reads, so the agent can refuse to answer for another file's profiles.
func (a *app) agentConfigPath() string {
	path := a.configPath
	if path == "" {
		path = config.DefaultPath()
	}
	if path == "" {
		return ""
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}
