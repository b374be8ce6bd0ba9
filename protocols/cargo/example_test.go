package cargo_test

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/credhelper/credhelper/protocols/cargo"
	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

// cargo asks for the token of its registry "internal"; the answer says
// until when cargo may reuse it.
func ExampleHelper_Serve() {
	r := face.ResolverFunc(func(ctx context.Context, profile string) (provider.Pair, error) {
		return provider.Pair{AuthToken: "token-of-" + profile, RefreshToken: "r", ValidUntil: time.Unix(1900000060, 0)}, nil
	})
	h, _ := cargo.New(r, []cargo.Rule{{Profile: "crates", Registries: []string{"internal"}}})
	req := `{"v":1,"registry":{"index-url":"sparse+https://cargo.example.com/index/","name":"internal"},"kind":"get","operation":"read"}`
	_ = h.Serve(context.Background(), strings.NewReader(req+"\n"), os.Stdout)
	// Output:
	// {"v":[1]}
	// {"Ok":{"kind":"get","token":"token-of-crates","cache":"expires","expiration":1900000000,"operation_independent":true}}
}
