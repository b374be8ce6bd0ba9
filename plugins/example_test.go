package plugins_test

import (
	"context"
	"fmt"
	"log"

	"github.com/credhelper/credhelper/plugins"
	"github.com/credhelper/credhelper/provider"
)

// The issuer a plugin serves implements the optional interfaces its
// plugin declared, so a host checks them as it would in process.
func ExamplePlugin_Issuer() {
	p, err := plugins.Open(plugins.Spec{
		Path:   "/home/me/.config/credhelper/plugins/credhelper-plugin-tokens",
		SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	iss, err := p.Issuer(ctx) // starts the plugin and asks what it declares
	if err != nil {
		log.Fatal(err)
	}
	if _, ok := iss.(provider.Generator); !ok {
		fmt.Println("this issuer cannot mint a first pair: store one with credhelper put")
	}
	fmt.Printf("refresh policy: %+v\n", provider.PolicyOf(iss))
}
