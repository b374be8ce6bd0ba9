package awssm_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/credhelper/credhelper/backends/awssm"
	"github.com/credhelper/credhelper/provider"
)

// ExampleNewFromConfig wires the backend the way `--backend
// awssm:momento/authentication-token --region us-west-2 --profile ops` does.
func ExampleNewFromConfig() {
	ctx := context.Background()
	b, err := awssm.NewFromConfig(ctx, func(o *awssm.Options) {
		o.Region = "us-west-2"
		o.Profile = "ops"
	})
	if err != nil {
		log.Fatal(err)
	}
	e, err := b.Load(ctx, "momento/authentication-token")
	switch {
	case errors.Is(err, provider.ErrNotFound):
		fmt.Println("no credential stored yet")
	case err != nil:
		log.Fatal(err)
	default:
		rec, err := provider.DecodeRecord(e.Value)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Pair) // tokens redacted
	}
}
