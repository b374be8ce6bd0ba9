package cli

import (
	"context"
	"crypto/subtle"

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
// engine, for a tool whose server rejected the token. The agent's socket
// protocol has no refresh, so it runs here; the agent adopts the new
// generation from the store when its own pair falls due, and until then
// keeps serving the rejected token. So when an agent answers, the refresh
// happens only if the store still holds the token the agent serves (the
// one the tool was given); otherwise the stored, newer pair is the answer
// and no refresh token is spent.
func (r profileResolver) Refresh(ctx context.Context, profile string) (provider.Pair, error) {
	served, viaAgent, err := r.a.viaAgent(ctx, profile)
	if !viaAgent || err != nil {
		return r.a.direct(ctx, profile, func(provider.Pair) bool { return true })
	}
	return r.a.direct(ctx, profile, func(stored provider.Pair) bool {
		return subtle.ConstantTimeCompare([]byte(stored.AuthToken), []byte(served.AuthToken)) == 1
	})
}
