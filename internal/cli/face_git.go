package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/internal/facerules"
	"github.com/credhelper/credhelper/protocols/git"
)

func (a *app) gitCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "git get|store|erase",
		Short: "Git credential helper: answer git's requests from matching profiles",
		Long: `git speaks git's credential-helper protocol. Point credential.helper at it
(or install the git-credential-credhelper symlink made by 'make install' and
use credential.helper=credhelper). A request matches a profile whose
[profiles.NAME.git] section names its host (with :port if any), protocol
(default https) and optionally a path prefix (git sends paths only with
credential.useHttpPath=true) and username; the most specific match wins.
The answer is the username, the profile's current auth token as the
password, and for a token that expires password_expiry_utc, min_validity
before it does (as every face tells its tool).

When no profile matches or anything fails, it prints nothing and exits 0 so
git tries its next helper; the reason is logged on standard error at debug
level (no match, malformed request) or warn level (a matching profile
could not be served).
store and erase do nothing: credhelper owns its credentials.`,
		Example: `  # ~/.config/credhelper/config.toml:
  #   [profiles.git]
  #   backend = "file:~/.config/credhelper/git-token.json"
  #   [profiles.git.git]
  #   host = "git.example.com"
  #   username = "deploy"
  git config --global credential.https://git.example.com.helper '!credhelper git'
  printf 'protocol=https\nhost=git.example.com\n\n' | credhelper git get`,
		Args:      cobra.MinimumNArgs(1),
		ValidArgs: []string{"get", "store", "erase"},
		RunE: func(cmd *cobra.Command, args []string) error {
			defer a.warnUnusable()
			h, err := a.gitHelper()
			if err == nil {
				err = h.Serve(cmd.Context(), args[0], a.stdin, a.stdout)
			}
			switch {
			case errors.Is(err, git.ErrNoMatch) || errors.Is(err, git.ErrBadRequest):
				a.logger.Debug("credhelper: " + err.Error())
			case err != nil:
				a.logger.Warn("credhelper: " + message(err))
			}
			return nil // git's convention: quiet failure, next helper
		},
	}
}

// gitHelper builds rules from every profile with a git.host.
func (a *app) gitHelper() (*git.Helper, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	// A profile with mistakes still maps its requests: using it reports
	// them, and every other profile keeps working.
	return git.New(git.ResolverFunc(a.credential), facerules.Git(cfg), func(o *git.Options) { o.MinValidity = facerules.MinValidity(cfg, a.minValid) })
}
