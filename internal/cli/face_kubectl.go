package cli

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/internal/facerules"
	"github.com/credhelper/credhelper/protocols/kubectl"
	"github.com/credhelper/credhelper/provider"
)

func (a *app) kubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "kubectl",
		Short: "Kubernetes exec credential plugin: print an ExecCredential with the token",
		Long: `kubectl prints the profile's current auth token as a Kubernetes
ExecCredential (client.authentication.k8s.io/v1, or v1beta1 when
KUBERNETES_EXEC_INFO asks for it) with status.token and
status.expirationTimestamp (RFC 3339, min_validity before the token
expires; omitted for a token that never expires), for the exec section of
a kubeconfig user. client-go caches the token until that time. Errors go to standard error with a non-zero exit
status.`,
		Example: `  # kubeconfig:
  # users:
  # - name: prod
  #   user:
  #     exec:
  #       apiVersion: client.authentication.k8s.io/v1
  #       command: credhelper
  #       args: ["kubectl", "--profile", "k8s-prod"]
  #       interactiveMode: Never
  credhelper kubectl --profile k8s-prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src := provider.CredentialProviderFunc(func(ctx context.Context) (provider.Pair, error) {
				return a.credential(ctx, a.profile)
			})
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			minValidity := facerules.MinValidity(cfg, a.minValid)(a.profile)
			return kubectl.Serve(cmd.Context(), src, os.Getenv(kubectl.EnvExecInfo), a.stdout, func(o *kubectl.Options) {
				o.MinValidity = func(string) time.Duration { return minValidity }
			})
		},
	}
}
