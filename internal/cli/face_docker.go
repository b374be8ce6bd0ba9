package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/internal/facerules"
	"github.com/credhelper/credhelper/protocols/docker"
)

// dockerHelperName is the name docker finds the helper under
// ("credsStore": "credhelper" runs docker-credential-credhelper).
const dockerHelperName = "docker-credential-credhelper"

func (a *app) dockerCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "docker get|store|erase|list|version",
		Short: "Docker credential helper (what docker-credential-credhelper runs)",
		Long: `docker speaks docker's credential-helper protocol. docker runs it as
docker-credential-credhelper (a symlink to credhelper, made by 'make install');
name credhelper in "credHelpers" for the registries it serves, not in
"credsStore", which would send every registry's login to it (and credhelper
stores nothing it does not own). Registries map to profiles with
server_urls in each profile's [profiles.NAME.docker] section; get answers
the profile's current auth token as the Secret, with the username
docker.username (default "<token>": an identity token).

credhelper owns the credentials: store succeeds only when docker stores back
exactly what get returned (it does after every login) and erase never
deletes anything. Errors are printed on standard output with exit status 1,
as docker expects; an unmapped registry is "credentials not found in native
keychain".`,
		Example: `  # ~/.docker/config.json: {"credHelpers": {"registry.example.com": "credhelper"}}
  # ~/.config/credhelper/config.toml:
  #   [profiles.registry]
  #   backend = "awssm:ci/registry-token"
  #   [profiles.registry.docker]
  #   server_urls = ["registry.example.com"]
  echo registry.example.com | docker-credential-credhelper get
  credhelper docker list`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"get", "store", "erase", "list", "version"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := a.serveDocker(cmd.Context(), dockerHelperName, args[0]); code != 0 {
				return exitStatus(code)
			}
			return nil
		},
	}
}

// dockerByName is the whole program when credhelper runs as
// docker-credential-*: like docker-credential-helpers' Serve, it takes
// exactly one argument.
func (a *app) dockerByName(ctx context.Context, name string, args []string) int {
	usage := fmt.Sprintf("Usage: %s <store|get|erase|list|version>", name)
	if len(args) != 1 {
		fmt.Fprintln(a.stdout, usage)
		return 1
	}
	action := args[0]
	switch action {
	case "--version", "-v":
		action = "version"
	case "--help", "-h":
		fmt.Fprintln(a.stdout, usage)
		return 0
	}
	if err := a.setup(); err != nil {
		fmt.Fprintln(a.stdout, message(err))
		return 1
	}
	return a.serveDocker(ctx, name, action)
}

// serveDocker runs one docker action; errors go to standard output with
// exit status 1, as docker-credential-helpers does.
func (a *app) serveDocker(ctx context.Context, name, action string) int {
	if action != "version" {
		defer a.warnUnusable()
	}
	h, err := a.dockerHelper(name, action)
	if err == nil {
		err = h.Serve(ctx, action, a.stdin, a.stdout)
	}
	if err != nil {
		fmt.Fprintln(a.stdout, message(err))
		return 1
	}
	return 0
}

// dockerHelper maps every profile's docker.server_urls. version needs no
// configuration.
func (a *app) dockerHelper(name, action string) (*docker.Helper, error) {
	var regs []docker.Registry
	if action != "version" {
		cfg, err := a.loadConfig()
		if err != nil {
			return nil, err
		}
		// A profile with mistakes still maps its registries: using it
		// reports them, and every other profile keeps working.
		regs = facerules.Docker(cfg)
	}
	return docker.New(docker.ResolverFunc(a.credential), regs, func(o *docker.Options) {
		o.Name, o.Version = name, version
	})
}
