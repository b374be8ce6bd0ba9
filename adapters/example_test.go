package adapters_test

import (
	"context"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/credhelper/credhelper/adapters"
	"github.com/credhelper/credhelper/provider"
)

// engine stands for a *refresh.Engine, which also implements Refresher.
var engine provider.CredentialProvider = provider.CredentialProviderFunc(func(context.Context) (provider.Pair, error) {
	return provider.Pair{AuthToken: "example-token"}, nil
})

// An oauth2.TokenSource for libraries that take one.
func ExampleTokenSource() {
	tok, _ := adapters.TokenSource(engine).Token()
	fmt.Println(tok.Type(), tok.AccessToken)
	client := oauth2.NewClient(context.Background(), adapters.TokenSource(engine))
	_ = client
	// Output: Bearer example-token
}

// An HTTP client whose requests carry the token and survive one rejected
// token.
func ExampleTransport() {
	client := &http.Client{Transport: adapters.Transport(engine, http.DefaultTransport)}
	_ = client // client.Get("https://api.example.com/...")
}

// gRPC calls carrying the token; Momento's API takes the key without a
// scheme.
func ExamplePerRPCCredentials() {
	conn, err := grpc.NewClient("cache.cell-1.example.com:443",
		grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(nil, "")),
		grpc.WithPerRPCCredentials(adapters.PerRPCCredentials(engine, func(o *adapters.Options) { o.BareToken = true })))
	if err != nil {
		return
	}
	defer conn.Close()
}
