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

// maxValidUntil is the last second of year 9999, the largest valid_until
// either side accepts (as in the stored record).
const maxValidUntil = 253402300799

// issuerServer is the plugin-side shim: it serves a provider.Issuer (and
// provider.Generator, if implemented) as the Issuer gRPC service.
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

func (s *issuerServer) Capabilities(context.Context, *pluginv1.IssuerCapabilitiesRequest) (*pluginv1.IssuerCapabilities, error) {
	_, gen := s.impl.(provider.Generator)
	return &pluginv1.IssuerCapabilities{Generate: gen}, nil
}

// issuerClient is the host-side shim: it calls the Issuer gRPC service and
// decodes its errors.
type issuerClient struct {
	c pluginv1.IssuerClient
}

var (
	_ provider.Issuer    = (*issuerClient)(nil)
	_ provider.Generator = (*issuerClient)(nil)
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

func (c *issuerClient) capabilities(ctx context.Context) (*pluginv1.IssuerCapabilities, error) {
	caps, err := c.c.Capabilities(ctx, &pluginv1.IssuerCapabilitiesRequest{})
	return caps, answerError(err)
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
	var vu uint64
	if !p.Never() {
		// An expiring pair never becomes "never" on the wire, even if its
		// time is before 1970.
		vu = uint64(max(p.ValidUntil.Unix(), 1))
	}
	return &pluginv1.Pair{
		AuthToken:    p.AuthToken,
		RefreshToken: p.RefreshToken,
		ValidUntil:   vu,
		Endpoint:     p.Endpoint,
		Generation:   p.Generation,
	}
}

func pairFromProto(p *pluginv1.Pair) (provider.Pair, error) {
	out := provider.Pair{
		AuthToken:    p.GetAuthToken(),
		RefreshToken: p.GetRefreshToken(),
		Endpoint:     p.GetEndpoint(),
		Generation:   p.GetGeneration(),
	}
	switch vu := p.GetValidUntil(); {
	case vu == 0:
	case vu > maxValidUntil:
		return provider.Pair{}, fmt.Errorf("plugins: pair valid_until %d is not epoch seconds (milliseconds?): %w", vu, provider.ErrInvalidRecord)
	default:
		out.ValidUntil = time.Unix(int64(vu), 0)
	}
	return out, nil
}

// Issuer is the provider.Issuer a plugin process serves, seen from the
// host; it is also a provider.Generator, which fails with
// provider.ErrUnsupported when the plugin's issuer cannot generate. It is
// safe for concurrent use; its process belongs to the Plugin that returned
// it.
type Issuer struct {
	p *Plugin
}

var (
	_ provider.Issuer    = (*Issuer)(nil)
	_ provider.Generator = (*Issuer)(nil)
)

// Refresh calls the plugin's Refresh. If the plugin process is lost during
// the call, the error is transient but does not wrap
// provider.ErrNotDelivered: the plugin may have spent the refresh token.
func (i *Issuer) Refresh(ctx context.Context, pair provider.Pair) (provider.Pair, error) {
	var out provider.Pair
	err := i.p.call(ctx, "Refresh", "the refresh token may have been spent", func(pr *proc) error {
		var err error
		out, err = pr.issuer.Refresh(ctx, pair)
		return err
	})
	return out, err
}

// Generate calls the plugin's Generate.
func (i *Issuer) Generate(ctx context.Context, req provider.GenerateRequest) (provider.Pair, error) {
	var out provider.Pair
	err := i.p.call(ctx, "Generate", "a pair may have been generated", func(pr *proc) error {
		var err error
		out, err = pr.issuer.Generate(ctx, req)
		return err
	})
	return out, err
}

// CanGenerate reports whether the plugin's issuer implements Generate.
func (i *Issuer) CanGenerate(ctx context.Context) (bool, error) {
	var gen bool
	err := i.p.call(ctx, "Capabilities", "", func(pr *proc) error {
		caps, err := pr.issuer.capabilities(ctx)
		gen = caps.GetGenerate()
		return err
	})
	return gen, err
}
