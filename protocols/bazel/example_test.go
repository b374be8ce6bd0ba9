package bazel_test

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/credhelper/credhelper/protocols/bazel"
	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

// Bazel asks for credentials for its remote cache; the answer holds the
// header and when to ask again.
func ExampleHelper_Serve() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := face.ResolverFunc(func(ctx context.Context, profile string) (provider.Pair, error) {
		return provider.Pair{AuthToken: "token-of-" + profile, RefreshToken: "r", ValidUntil: now.Add(time.Hour)}, nil
	})
	h, _ := bazel.New(r, []bazel.Rule{{Profile: "cache", Hosts: []string{"*.example.com"}}},
		func(o *bazel.Options) { o.Now = func() time.Time { return now } })
	_ = h.Serve(context.Background(), "get", strings.NewReader(`{"uri":"grpcs://cache.example.com"}`), os.Stdout)
	// Output:
	// {"headers":{"Authorization":["Bearer token-of-cache"]},"expires":"2026-01-01T00:59:00Z"}
}
