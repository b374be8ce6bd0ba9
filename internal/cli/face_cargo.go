package cli

import (
	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/internal/facerules"
	"github.com/credhelper/credhelper/protocols/cargo"
)

// cargoPluginFlag is the argument cargo runs every credential provider
// with.
const cargoPluginFlag = "--cargo-plugin"

func (a *app) cargoCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cargo --cargo-plugin",
		Short: "cargo credential provider: registry tokens from matching profiles",
		Long: `cargo speaks cargo's credential-provider protocol (cargo 1.74 and later).
cargo runs "credhelper --cargo-plugin" for a registry whose
credential-provider is "credhelper"; requests for a registry named in a
profile's [profiles.NAME.cargo] registries (or index_urls) get the
profile's current token, cached by cargo until min_validity before it
expires. Other registries answer url-not-supported, so cargo asks its next
provider; cargo login and logout are refused (store a new pair with
'credhelper put').

Errors are answered in the protocol ({"Err": {"kind": "other", "message":
...}}) with exit status 0; cargo shows the message.`,
		Example: `  # ~/.cargo/config.toml:
  #   [registries.internal]
  #   index = "sparse+https://cargo.example.com/index/"
  #   credential-provider = "credhelper"
  # ~/.config/credhelper/config.toml:
  #   [profiles.crates]
  #   backend = "awssm:ci/cargo-token"
  #   [profiles.crates.cargo]
  #   registries = ["internal"]
  cargo fetch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			defer a.warnUnusable()
			h, err := a.cargoHelper()
			if err != nil {
				h = cargo.Failing(err)
			}
			return h.Serve(cmd.Context(), a.stdin, a.stdout)
		},
	}
	cmd.Flags().Bool("cargo-plugin", false, "run as cargo runs it (accepted and ignored)")
	return cmd
}

// cargoHelper maps every profile's cargo.registries and cargo.index_urls.
func (a *app) cargoHelper() (*cargo.Helper, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	rules := facerules.Cargo(cfg)
	return cargo.New(profileResolver{a}, rules, func(o *cargo.Options) { o.MinValidity = facerules.MinValidity(cfg, a.minValid) })
}
