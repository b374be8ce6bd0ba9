package main

import (
	"context"

	"github.com/credhelper/credhelper/provider"
)

// viaAgent asks a running agent for the profile's pair. ok is false when no
// agent answers, and the caller then resolves the credential directly.
func (a *app) viaAgent(ctx context.Context, profile string) (p provider.Pair, ok bool, err error) {
	return provider.Pair{}, false, nil
}
