package goauth_test

import (
	"context"
	"os"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/protocols/goauth"
	"github.com/credhelper/credhelper/provider"
)

// The go command's first run: no arguments, no input; every profile's
// prefixes with its header.
func ExampleHelper_Serve() {
	r := face.ResolverFunc(func(ctx context.Context, profile string) (provider.Pair, error) {
		return provider.Pair{AuthToken: "token-of-" + profile}, nil
	})
	h, _ := goauth.New(r, []goauth.Rule{{Profile: "modules", URLPrefixes: []string{"https://goproxy.example.com", "https://git.example.com/org"}}})
	_ = h.Serve(context.Background(), nil, nil, os.Stdout)
	// Output:
	// https://goproxy.example.com
	// https://git.example.com/org
	//
	// Authorization: Bearer token-of-modules
}
