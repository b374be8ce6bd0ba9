package cli

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/credhelper/credhelper/internal/facerules"
	"github.com/credhelper/credhelper/internal/rejected"
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
	return hinted(r.a.credential(ctx, profile))
}

// hintedError is an error whose text ends with the command's advice
// (message): the protocols that put an error's text into their answer
// (cargo's Err, GOAUTH's warnings) then say what to do, as the faces that
// print message themselves do.
type hintedError struct{ err error }

func (e hintedError) Error() string { return message(e.err) }
func (e hintedError) Unwrap() error { return e.err }

func hinted(p provider.Pair, err error) (provider.Pair, error) {
	if err != nil {
		return p, hintedError{err}
	}
	return p, nil
}

// Refresh implements face.Refresher: one forced refresh through the
// engine, for a tool whose server rejected the token, unless the stored
// pair is younger than rejected.Settle (a server that rejects every token
// then costs one refresh a minute, not one per request). The agent's socket
// protocol has no refresh, so it runs here; the agent adopts the new
// generation from the store when its own pair falls due, and until then
// keeps serving the rejected token. So when an agent answers, the refresh
// happens only if the store still holds the token the agent serves (the
// one the tool was given); otherwise the stored, newer pair is the answer
// and no refresh token is spent.
func (r profileResolver) Refresh(ctx context.Context, profile string) (provider.Pair, error) {
	r.a.used.Store(profile, struct{}{})
	served, viaAgent, err := r.a.viaAgent(ctx, profile)
	if !viaAgent || err != nil {
		return hinted(r.a.direct(ctx, profile, func(stored provider.Pair) bool { return rejected.ShouldRefresh(stored, time.Now()) }))
	}
	return hinted(r.a.direct(ctx, profile, func(stored provider.Pair) bool {
		return subtle.ConstantTimeCompare([]byte(stored.AuthToken), []byte(served.AuthToken)) == 1 && rejected.ShouldRefresh(stored, time.Now())
	}))
}

// warnUnusable warns, once each, about the profiles of the config file
// that a mistake in the file makes unusable and that this command did not
// use: a face answers with the profiles that work, fails only the requests
// an unusable profile would have answered (with its error), and says what
// to fix in the others.
func (a *app) warnUnusable() {
	cfg, err := a.loadConfig()
	if err != nil {
		return
	}
	for _, pe := range facerules.Unusable(cfg) {
		if _, used := a.used.Load(pe.Profile); !used {
			a.used.Store(pe.Profile, struct{}{})
			a.logger.Warn("credhelper: " + oneLine(pe.Error()))
		}
	}
}

// errNotReady reports a profile whose pair cannot be had without waiting
// on its issuer.
var errNotReady = errors.New("its stored pair has less than min_validity left: it is served once refreshed")

// readyResolver resolves only the profiles whose stored pair is usable
// now, so that nothing waits on an issuer: for GOAUTH's first run, which
// the go command makes before every first fetch whether or not it needs a
// credential. A profile not ready is left out; the go command asks again,
// with the URL, after the server's 401, and that run waits for it.
type readyResolver struct{ a *app }

var _ face.Resolver = readyResolver{}

// Credential implements face.Resolver.
func (r readyResolver) Credential(ctx context.Context, profile string) (provider.Pair, error) {
	return hinted(r.ready(ctx, profile))
}

func (r readyResolver) ready(ctx context.Context, profile string) (provider.Pair, error) {
	a := r.a
	a.used.Store(profile, struct{}{})
	w, err := a.wireToServe(ctx, profile)
	if err != nil {
		return provider.Pair{}, err
	}
	entry, err := w.backend.Load(ctx, w.key)
	w.Close()
	if err != nil {
		return provider.Pair{}, err
	}
	rec, err := provider.DecodeRecord(entry.Value)
	if err != nil {
		return provider.Pair{}, err
	}
	minValidity := facerules.MinValidity(w.cfg, a.minValid)(profile)
	if !rec.Pair.Never() && !rec.Pair.ValidFor(time.Now(), minValidity) {
		return provider.Pair{}, fmt.Errorf("profile %q: %w", profile, errNotReady)
	}
	// Usable now: the engine serves it at once (and hands a due refresh
	// to a detached refresher).
	return a.direct(ctx, profile, nil)
}
