package momento_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/provider"
)

// Generate a first key with a session token, then refresh it, against the
// built-in dev issuer on loopback. Against Momento itself, leave Addr and
// Insecure unset: the issuer then calls control.<endpoint>:443 over TLS.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	iss, err := momento.New(func(o *momento.Options) {
		o.Addr = srv.Addr()
		o.Insecure = true
	})
	if err != nil {
		log.Fatal(err)
	}
	first, err := iss.Generate(ctx, provider.GenerateRequest{SessionToken: dev.DefaultSessionToken, Lifetime: 24 * time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	next, err := iss.Refresh(ctx, first)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("endpoint:", next.Endpoint)
	fmt.Println("rotated:", next.RefreshToken != first.RefreshToken)
	fmt.Println("refreshes counted:", srv.Stats().Refreshes)
	// Output:
	// endpoint: cell-dev.credhelper.local
	// rotated: true
	// refreshes counted: 1
}
