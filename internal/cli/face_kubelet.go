package cli

import (
	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/internal/facerules"
	"github.com/credhelper/credhelper/protocols/kubelet"
)

func (a *app) kubeletCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "kubelet",
		Short: "Kubelet image credential provider: registry credentials from matching profiles",
		Long: `kubelet speaks the kubelet's image credential provider protocol
(credentialprovider.kubelet.k8s.io/v1). It reads a CredentialProviderRequest
on standard input and prints a CredentialProviderResponse whose auth entry,
keyed by the matching pattern of a profile's [profiles.NAME.kubelet]
match_images (the kubelet's matchImages syntax), holds kubelet.username
(default "credhelper") and the profile's current token. cacheDuration is the
token's remaining validity less min_validity, so the kubelet never caches
past expiry.

An image no profile matches gets the kubelet's "no credentials" answer, an
empty auth cached for a minute. Errors go to standard error with exit
status 1; the kubelet logs them.`,
		Example: `  # CredentialProviderConfig (--image-credential-provider-config):
  #   providers:
  #   - name: credhelper
  #     apiVersion: credentialprovider.kubelet.k8s.io/v1
  #     matchImages: ["registry.example.com"]
  #     defaultCacheDuration: 10m
  #     args: [kubelet]
  echo '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"registry.example.com/app:1"}' | credhelper kubelet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			defer a.warnUnusable()
			h, err := a.kubeletHelper()
			if err != nil {
				return err
			}
			return h.Serve(cmd.Context(), a.stdin, a.stdout)
		},
	}
}

// kubeletHelper maps every profile's kubelet.match_images.
func (a *app) kubeletHelper() (*kubelet.Helper, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	rules := facerules.Kubelet(cfg)
	h, err := kubelet.New(profileResolver{a}, rules, func(o *kubelet.Options) { o.MinValidity = facerules.MinValidity(cfg, a.minValid) })
	if err != nil {
		return nil, usageError{err}
	}
	return h, nil
}
