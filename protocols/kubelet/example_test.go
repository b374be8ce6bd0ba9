package kubelet_test

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/protocols/kubelet"
	"github.com/credhelper/credhelper/provider"
)

// The kubelet asks for registry.example.com/app:1; the answer may be
// cached for the registry until a minute before the token expires.
func ExampleHelper_Serve() {
	now := time.Unix(1900000000, 0)
	r := face.ResolverFunc(func(ctx context.Context, profile string) (provider.Pair, error) {
		return provider.Pair{AuthToken: "token-of-" + profile, RefreshToken: "r", ValidUntil: now.Add(time.Hour)}, nil
	})
	h, _ := kubelet.New(r, []kubelet.Rule{{Profile: "images", MatchImages: []string{"*.example.com"}}},
		func(o *kubelet.Options) { o.Now = func() time.Time { return now } })
	req := `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"registry.example.com/app:1"}`
	_ = h.Serve(context.Background(), strings.NewReader(req), os.Stdout)
	// Output:
	// {"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"3540s","auth":{"*.example.com":{"username":"credhelper","password":"token-of-images"}}}
}
