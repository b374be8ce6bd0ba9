package kubectl_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/credhelper/credhelper/protocols/kubectl"
	"github.com/credhelper/credhelper/provider"
)

// client-go asks for a v1 ExecCredential in KUBERNETES_EXEC_INFO.
func ExampleServe() {
	src := provider.CredentialProviderFunc(func(ctx context.Context) (provider.Pair, error) {
		return provider.Pair{AuthToken: "tok", RefreshToken: "r", ValidUntil: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, nil
	})
	info := `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}`
	if err := kubectl.Serve(context.Background(), src, info, os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok","expirationTimestamp":"2029-12-31T23:59:00Z"}}
}
