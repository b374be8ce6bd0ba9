package git_test

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/credhelper/credhelper/protocols/git"
	"github.com/credhelper/credhelper/provider"
)

// git asks for a credential for https://git.example.com; the profile's
// token comes back with its expiry.
func ExampleHelper_Serve() {
	r := git.ResolverFunc(func(ctx context.Context, profile string) (provider.Pair, error) {
		return provider.Pair{AuthToken: "token-of-" + profile, RefreshToken: "r", ValidUntil: time.Unix(1900000000, 0)}, nil
	})
	h, _ := git.New(r, []git.Rule{{Profile: "ci", Host: "git.example.com", Username: "deploy"}})
	_ = h.Serve(context.Background(), "get", strings.NewReader("protocol=https\nhost=git.example.com\n\n"), os.Stdout)
	// Output:
	// username=deploy
	// password=token-of-ci
	// password_expiry_utc=1899999940
}
