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
// own pair falls due. A profile without an issuer, or whose pair never
// expires, is resolved without a refresh.
func (r profileResolver) Refresh(ctx context.Context, profile string) (provider.Pair, error) {
	a := r.a
	w, err := a.wire(ctx, profile)
	if err != nil {
		return provider.Pair{}, err
	}
	defer w.Close()
	e, err := a.engine(w)
	if err != nil {
		return provider.Pair{}, err
	}
	p, err := e.Credential(ctx)
	if err == nil && w.issuer != nil && !p.Never() {
		p, err = e.Refresh(ctx)
	}
	if cerr := e.Close(); err == nil && cerr != nil {
		a.logger.Warn("credhelper: " + cerr.Error())
	}
	if err != nil {
		return provider.Pair{}, err
	}
	if w.profile.Endpoint != "" {
		if err := p.CheckEndpoint(w.profile.Endpoint); err != nil {
			return provider.Pair{}, err
		}
	}
	return p, nil
}
