package cli

import (
	"context"

	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

// profileResolver resolves profiles for the faces: a.credential (the agent,
// else the engine), and a forced refresh for tools that report a rejected
// token.
type profileResolver struct{ a *app }

var (
	_ face.Resolver  = profileResolver{}
	_ face.Refresher = profileResolver{}
)

// Credential implements face.Resolver.
func (r profileResolver) Credential(ctx context.Context, profile string) (provider.Pair, error) {
	return r.a.credential(ctx, profile)
}

// Refresh implements face.Refresher: one forced refresh through the
// engine. It does not go through the agent, whose socket protocol has no
// refresh; the agent adopts the new generation from the store when its
// own pair falls due.
func (r profileResolver) Refresh(ctx context.Context, profile string) (provider.Pair, error) {
	return r.a.direct(ctx, profile, true)
}
