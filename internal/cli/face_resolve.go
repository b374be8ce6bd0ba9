package cli

import (
	"context"
	"time"

	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/provider"
)

// defaultMinValidity is the refresh engine's default minimum validity,
// used to tell caching tools when to ask again.
const defaultMinValidity = time.Minute

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

// minValidity returns, per profile, the minimum validity the faces
// subtract from a token's expiry when they tell a tool how long to cache
// it: --min-validity, else the profile's min_validity, else the engine's
// default.
func (a *app) minValidity(cfg *config.File) func(string) time.Duration {
	return func(name string) time.Duration {
		if a.minValid > 0 {
			return a.minValid
		}
		if p, err := cfg.Profile(name); err == nil && p.MinValidity.Duration > 0 {
			return p.MinValidity.Duration
		}
		return defaultMinValidity
	}
}

// eachProfile calls fn with every profile of the configuration, with its
// defaults applied.
func eachProfile(cfg *config.File, fn func(name string, p config.Profile)) error {
	for _, name := range cfg.ProfileNames() {
		p, err := cfg.Profile(name)
		if err != nil {
			return err
		}
		fn(name, p)
	}
	return nil
}
