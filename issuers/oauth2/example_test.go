package oauth2_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/oauth2"
	"github.com/credhelper/credhelper/provider"
)

// Refresh an OAuth2 pair against the dev issuer's token endpoint. For a
// real server, pass its https token URL and your client's credentials.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	first, err := srv.Mint(provider.GenerateRequest{Lifetime: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	iss, err := oauth2.New(srv.TokenURL(), func(o *oauth2.Options) {
		o.ClientID = dev.DefaultClientID
		o.ClientSecret = dev.DefaultClientSecret
		o.Scopes = []string{"cache"}
	})
	if err != nil {
		log.Fatal(err)
	}
	next, err := iss.Refresh(ctx, first)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("rotated:", next.RefreshToken != first.RefreshToken)
	fmt.Println("valid for about an hour:", time.Until(next.ValidUntil) > 59*time.Minute)
	// Output:
	// rotated: true
	// valid for about an hour: true
}
