package dev_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// Start the dev issuer on a free loopback port and mint a first pair
// in-process. Clients reach it at srv.Addr() (Momento gRPC) and
// srv.TokenURL() (OAuth2); srv.StatsURL() serves the counters.
func ExampleListen() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops the server
	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	p, err := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	ep, _ := p.ResolveEndpoint()
	fmt.Println(ep, srv.Stats().Generates)
	// Output: cell-dev.credhelper.local 1
}
