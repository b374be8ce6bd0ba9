package cli

import (
	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/internal/facerules"
	"github.com/credhelper/credhelper/protocols/terraform"
)

// terraformHelperPrefix starts the names Terraform runs credentials helpers
// under: credentials_helper "credhelper" runs
// terraform-credentials-credhelper from its plugin directories.
const terraformHelperPrefix = "terraform-credentials-"

func (a *app) terraformCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "terraform get|store|forget HOST",
		Short: "Terraform and OpenTofu credentials helper: host tokens from matching profiles",
		Long: `terraform speaks the credentials helper protocol of Terraform and OpenTofu.
With credentials_helper "credhelper" {} in the CLI configuration, Terraform
runs terraform-credentials-credhelper (a link to credhelper in its plugin
directory, e.g. ~/.terraform.d/plugins) as "get HOST"; for a host named in
a profile's [profiles.NAME.terraform] hosts it prints {"token": "..."}, for
any other host {}. store (terraform login) and forget (terraform logout)
are refused for hosts credhelper serves: it owns those credentials.

Errors go to standard error with a non-zero exit status, which Terraform
reports.`,
		Example: `  # ~/.terraformrc:
  #   credentials_helper "credhelper" {}
  ln -s "$(command -v credhelper)" ~/.terraform.d/plugins/terraform-credentials-credhelper
  credhelper terraform get app.terraform.io`,
		Args:      cobra.ArbitraryArgs,
		ValidArgs: []string{"get", "store", "forget"},
		RunE: func(cmd *cobra.Command, args []string) error {
			defer a.warnUnusable()
			h, err := a.terraformHelper()
			if err != nil {
				return err
			}
			return h.Serve(cmd.Context(), args, a.stdin, a.stdout)
		},
	}
}

// terraformHelper maps every profile's terraform.hosts.
func (a *app) terraformHelper() (*terraform.Helper, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	rules := facerules.Terraform(cfg)
	h, err := terraform.New(profileResolver{a}, rules)
	if err != nil {
		return nil, usageError{err}
	}
	return h, nil
}
