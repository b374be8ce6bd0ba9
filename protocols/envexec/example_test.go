package envexec_test

import (
	"context"
	"fmt"
	"os"

	"github.com/credhelper/credhelper/protocols/envexec"
	"github.com/credhelper/credhelper/provider"
)

// Print a pair as shell export lines.
func ExampleWrite() {
	p := provider.Pair{AuthToken: "it's-a-token", Endpoint: "cell-1.example.com"}
	vars, err := envexec.DefaultVars().Values(p)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = envexec.Write(os.Stdout, envexec.FormatShell, vars)
	// Output:
	// export MOMENTO_API_KEY='it'\''s-a-token'
	// export MOMENTO_ENDPOINT='cell-1.example.com'
}

// Run a command with the token in its environment and get its exit status.
func ExampleRunner_Run() {
	src := provider.CredentialProviderFunc(func(ctx context.Context) (provider.Pair, error) {
		return provider.Pair{AuthToken: "tok"}, nil
	})
	r, err := envexec.New(src, envexec.Vars{Token: "API_TOKEN"})
	if err != nil {
		fmt.Println(err)
		return
	}
	code, err := r.Run(context.Background(), []string{"sh", "-c", `echo "got $API_TOKEN"; exit 3`})
	fmt.Println(code, err)
	// Output:
	// got tok
	// 3 <nil>
}
