package docker_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/credhelper/credhelper/protocols/docker"
	"github.com/credhelper/credhelper/provider"
)

// A helper serving one registry from one profile answers docker's get.
func ExampleHelper_Serve() {
	r := docker.ResolverFunc(func(ctx context.Context, profile string) (provider.Pair, error) {
		return provider.Pair{AuthToken: "token-of-" + profile}, nil
	})
	h, err := docker.New(r, []docker.Registry{{ServerURL: "registry.example.com", Profile: "ci"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = h.Serve(context.Background(), "get", strings.NewReader("https://registry.example.com\n"), os.Stdout)
	err = h.Serve(context.Background(), "get", strings.NewReader("quay.io"), os.Stdout)
	fmt.Println(err)
	// Output:
	// {"ServerURL":"https://registry.example.com","Username":"\u003ctoken\u003e","Secret":"token-of-ci"}
	// credentials not found in native keychain
}
