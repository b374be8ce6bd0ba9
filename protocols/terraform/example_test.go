package terraform_test

import (
	"context"
	"os"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/protocols/terraform"
	"github.com/credhelper/credhelper/provider"
)

// Terraform asks for the token of a host a profile serves, then of one no
// profile serves.
func ExampleHelper_Serve() {
	r := face.ResolverFunc(func(ctx context.Context, profile string) (provider.Pair, error) {
		return provider.Pair{AuthToken: "token-of-" + profile}, nil
	})
	h, _ := terraform.New(r, []terraform.Rule{{Profile: "hcp", Hosts: []string{"app.terraform.io"}}})
	_ = h.Serve(context.Background(), []string{"get", "app.terraform.io"}, nil, os.Stdout)
	_ = h.Serve(context.Background(), []string{"get", "registry.example.com"}, nil, os.Stdout)
	// Output:
	// {"token":"token-of-hcp"}
	// {}
}
