package plugins

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pluginv1 "github.com/credhelper/credhelper/plugins/proto/credhelper/plugin/v1"
	"github.com/credhelper/credhelper/provider"
)

// maxValidUntil is the last second of year 9999, the latest time of a
// pair either side accepts (as in the stored record).
const maxValidUntil = 253402300799

// issuerServer is the plugin-side shim: it serves a provider.Issuer (and
// provider.Generator and provider.Introspector, if implemented, and its
// provider.RefreshPolicy) as the Issuer gRPC service.
type issuerServer struct {
	pluginv1.UnimplementedIssuerServer
	impl provider.Issuer
}

func (s *issuerServer) Refresh(ctx context.Context, req *pluginv1.RefreshRequest) (*pluginv1.RefreshResponse, error) {
	in, err := pairFromProto(req.GetPair())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := s.impl.Refresh(ctx, in)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.RefreshResponse{Pair: pairToProto(out)}, nil
}

func (s *issuerServer) Generate(ctx context.Context, req *pluginv1.GenerateRequest) (*pluginv1.GenerateResponse, error) {
	g, ok := s.impl.(provider.Generator)
	if !ok {
		return nil, toStatus(fmt.Errorf("plugins: this issuer cannot generate a first pair: %w", provider.ErrUnsupported))
	}
	out, err := g.Generate(ctx, provider.GenerateRequest{
		SessionToken: req.GetSessionToken(),
		Lifetime:     req.GetLifetime().AsDuration(),
		Never:        req.GetNever(),
		Description:  req.GetDescription(),
		Scope: provider.Scope{
			Caches:   req.GetScope().GetCaches(),
			ReadOnly: req.GetScope().GetReadOnly(),
		},
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.GenerateResponse{Pair: pairToProto(out)}, nil
}

func (s *issuerServer) RefreshTokenActive(ctx context.Context, req *pluginv1.RefreshTokenActiveRequest) (*pluginv1.RefreshTokenActiveResponse, error) {
	in, ok := s.impl.(provider.Introspector)
	if !ok {
		return nil, toStatus(fmt.Errorf("plugins: this issuer cannot tell whether a refresh token is active: %w", provider.ErrUnsupported))
	}
	pair, err := pairFromProto(req.GetPair())
	if err != nil {
		return nil, toStatus(err)
	}
	active, err := in.RefreshTokenActive(ctx, pair)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.RefreshTokenActiveResponse{Active: active}, nil
}

// Capabilities declares what the served issuer implements, found by type
// assertion, and its refresh policy.
func (s *issuerServer) Capabilities(context.Context, *pluginv1.IssuerCapabilitiesRequest) (*pluginv1.IssuerCapabilities, error) {
	_, gen := s.impl.(provider.Generator)
	_, intro := s.impl.(provider.Introspector)
	policy := provider.PolicyOf(s.impl)
	return &pluginv1.IssuerCapabilities{
		Generate:                  gen,
		Introspect:                intro,
		RefreshAfterExpiry:        policy.RefreshAfterExpiry,
		RejectionRevokesAuthToken: policy.RejectionRevokesAuthToken,
	}, nil
}

// issuerClient is the host-side shim: it calls the Issuer gRPC service and
// decodes its errors.
type issuerClient struct {
	c pluginv1.IssuerClient
}

var (
	_ provider.Issuer       = (*issuerClient)(nil)
	_ provider.Generator    = (*issuerClient)(nil)
	_ provider.Introspector = (*issuerClient)(nil)
)

func (c *issuerClient) Refresh(ctx context.Context, pair provider.Pair) (provider.Pair, error) {
	resp, err := c.c.Refresh(ctx, &pluginv1.RefreshRequest{Pair: pairToProto(pair)})
	if err != nil {
		return provider.Pair{}, answerError(err)
	}
	return pairFromResponse(resp.GetPair())
}

func (c *issuerClient) Generate(ctx context.Context, req provider.GenerateRequest) (provider.Pair, error) {
	resp, err := c.c.Generate(ctx, &pluginv1.GenerateRequest{
		SessionToken: req.SessionToken,
		Lifetime:     durationpb.New(req.Lifetime),
		Never:        req.Never,
		Description:  req.Description,
		Scope:        &pluginv1.Scope{Caches: req.Scope.Caches, ReadOnly: req.Scope.ReadOnly},
	})
	if err != nil {
		return provider.Pair{}, answerError(err)
	}
	return pairFromResponse(resp.GetPair())
}

// RefreshTokenActive asks the plugin's issuer. A plugin older than the
// RPC answers Unimplemented, which decodes to provider.ErrUnsupported.
func (c *issuerClient) RefreshTokenActive(ctx context.Context, pair provider.Pair) (bool, error) {
	resp, err := c.c.RefreshTokenActive(ctx, &pluginv1.RefreshTokenActiveRequest{Pair: pairToProto(pair)})
	if err != nil {
		return false, answerError(err)
	}
	return resp.GetActive(), nil
}

// pairFromResponse decodes a pair an issuer returned. A malformed one is a
// protocol violation; the tokens it may hold are never put in the error.
func pairFromResponse(p *pluginv1.Pair) (provider.Pair, error) {
	if p == nil {
		return provider.Pair{}, errors.New("the plugin broke the protocol: it returned no pair")
	}
	if p.GetAuthToken() == "" {
		return provider.Pair{}, fmt.Errorf("the plugin returned a pair without an auth token: %w", provider.ErrInvalidRecord)
	}
	return pairFromProto(p)
}

func pairToProto(p provider.Pair) *pluginv1.Pair {
	return &pluginv1.Pair{
		AuthToken:         p.AuthToken,
		RefreshToken:      p.RefreshToken,
		ValidUntil:        secondsToProto(p.ValidUntil),
		Endpoint:          p.Endpoint,
		Generation:        p.Generation,
		RefreshValidUntil: secondsToProto(p.RefreshValidUntil),
		IssuedAt:          secondsToProto(p.IssuedAt),
	}
}

func pairFromProto(p *pluginv1.Pair) (provider.Pair, error) {
	out := provider.Pair{
		AuthToken:    p.GetAuthToken(),
		RefreshToken: p.GetRefreshToken(),
		Endpoint:     p.GetEndpoint(),
		Generation:   p.GetGeneration(),
	}
	var err error
	if out.ValidUntil, err = secondsFromProto("valid_until", p.GetValidUntil()); err != nil {
		return provider.Pair{}, err
	}
	if out.RefreshValidUntil, err = secondsFromProto("refresh_valid_until", p.GetRefreshValidUntil()); err != nil {
		return provider.Pair{}, err
	}
	if out.IssuedAt, err = secondsFromProto("issued_at", p.GetIssuedAt()); err != nil {
		return provider.Pair{}, err
	}
	return out, nil
}

// secondsToProto encodes a pair's time as epoch seconds, 0 for the zero
// Time. A set time never becomes 0 on the wire, even if it is before 1970.
func secondsToProto(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(max(t.Unix(), 1))
}

// secondsFromProto decodes a pair's time field; 0 is the zero Time.
func secondsFromProto(field string, secs uint64) (time.Time, error) {
	switch {
	case secs == 0:
		return time.Time{}, nil
	case secs > maxValidUntil:
		return time.Time{}, fmt.Errorf("plugins: pair %s %d is not epoch seconds (milliseconds?): %w", field, secs, provider.ErrInvalidRecord)
	}
	return time.Unix(int64(secs), 0), nil
}

// issuer is the provider.Issuer a plugin process serves, seen from the
// host, with the capabilities it declared when opened. It is a
// provider.RefreshPolicyIssuer with the declared policy; Plugin.Issuer
// adds provider.Generator and provider.Introspector when the plugin
// declared them.
type issuer struct {
	bound[issuerCaps]
}

// generator and introspector each add one optional method to an issuer
// that declared it.
type (
	generator    struct{ i *issuer }
	introspector struct{ i *issuer }
)

var (
	_ provider.RefreshPolicyIssuer = (*issuer)(nil)
	_ provider.Generator           = struct {
		*issuer
		generator
	}{}
	_ provider.Introspector = struct {
		*issuer
		introspector
	}{}
)

// Issuer returns the provider.Issuer the plugin serves, starting the
// plugin process if it does not run and asking which capabilities its
// issuer declares. The value implements provider.RefreshPolicyIssuer with
// the declared policy (the zero policy from a plugin that declares none),
// and provider.Generator and provider.Introspector only if the plugin
// declared them. It fails with an error wrapping provider.ErrUnsupported
// if the plugin serves no issuer.
//
// The value is safe for concurrent use; its process belongs to p. After a
// restart its calls fail with ErrCapabilitiesChanged if the new process
// declares other capabilities.
func (p *Plugin) Issuer(ctx context.Context) (provider.Issuer, error) {
	bd, err := openPart(ctx, p, "issuer", (*proc).issuerCapabilities)
	if err != nil {
		return nil, err
	}
	i := &issuer{bd}
	g, n := generator{i}, introspector{i}
	switch {
	case i.caps.generate && i.caps.introspect:
		return struct {
			*issuer
			generator
			introspector
		}{i, g, n}, nil
	case i.caps.generate:
		return struct {
			*issuer
			generator
		}{i, g}, nil
	case i.caps.introspect:
		return struct {
			*issuer
			introspector
		}{i, n}, nil
	}
	return i, nil
}

// Refresh calls the plugin's Refresh. If the plugin process is lost during
// the call, the error is transient but does not wrap
// provider.ErrNotDelivered: the plugin may have spent the refresh token.
func (i *issuer) Refresh(ctx context.Context, pair provider.Pair) (provider.Pair, error) {
	var out provider.Pair
	err := i.call(ctx, "Refresh", "the refresh token may have been spent", func(pr *proc) error {
		var err error
		out, err = pr.issuer.Refresh(ctx, pair)
		return err
	})
	return out, err
}

// RefreshPolicy returns the policy the plugin's issuer declared when
// opened. It makes no call.
func (i *issuer) RefreshPolicy() provider.RefreshPolicy { return i.caps.policy }

// Generate calls the plugin's Generate.
func (g generator) Generate(ctx context.Context, req provider.GenerateRequest) (provider.Pair, error) {
	var out provider.Pair
	err := g.i.call(ctx, "Generate", "a pair may have been generated", func(pr *proc) error {
		var err error
		out, err = pr.issuer.Generate(ctx, req)
		return err
	})
	return out, err
}

// RefreshTokenActive calls the plugin's RefreshTokenActive; it spends
// nothing.
func (n introspector) RefreshTokenActive(ctx context.Context, pair provider.Pair) (bool, error) {
	var active bool
	err := n.i.call(ctx, "RefreshTokenActive", "", func(pr *proc) error {
		var err error
		active, err = pr.issuer.RefreshTokenActive(ctx, pair)
		return err
	})
	return active, err
}
