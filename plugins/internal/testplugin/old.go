package main

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/credhelper/credhelper/plugins"
	pluginv1 "github.com/credhelper/credhelper/plugins/proto/credhelper/plugin/v1"
)

// oldIssuer answers as an issuer plugin built against the protocol's first
// release: its Capabilities know only generate, its pairs only fields 1-5,
// and RefreshTokenActive is not implemented (gRPC Unimplemented).
// declareIntrospect makes it claim introspection all the same, as a
// plugin that declares what it does not implement would.
type oldIssuer struct {
	pluginv1.UnimplementedIssuerServer
	declareIntrospect bool
}

func (o oldIssuer) Refresh(_ context.Context, req *pluginv1.RefreshRequest) (*pluginv1.RefreshResponse, error) {
	in := req.GetPair()
	out := &pluginv1.Pair{
		AuthToken:    in.GetAuthToken() + "+",
		RefreshToken: in.GetRefreshToken() + "+",
		Endpoint:     in.GetEndpoint(),
		Generation:   in.GetGeneration(),
	}
	if vu := in.GetValidUntil(); vu != 0 {
		out.ValidUntil = vu + 3600
	}
	return &pluginv1.RefreshResponse{Pair: out}, nil
}

func (o oldIssuer) Generate(_ context.Context, req *pluginv1.GenerateRequest) (*pluginv1.GenerateResponse, error) {
	return &pluginv1.GenerateResponse{Pair: &pluginv1.Pair{AuthToken: "auth-" + req.GetDescription(), RefreshToken: "refresh-" + req.GetDescription(), ValidUntil: 1_000_003_600}}, nil
}

func (o oldIssuer) Capabilities(context.Context, *pluginv1.IssuerCapabilitiesRequest) (*pluginv1.IssuerCapabilities, error) {
	return &pluginv1.IssuerCapabilities{Generate: true, Introspect: o.declareIntrospect}, nil
}

// oldIssuerPlugin serves oldIssuer over go-plugin.
type oldIssuerPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl oldIssuer
}

func (p *oldIssuerPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterIssuerServer(s, p.impl)
	return nil
}

func (p *oldIssuerPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("testplugin: the old issuer is served, never dispensed")
}

// serveOld serves only the old-style issuer.
func serveOld(declareIntrospect bool) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugins.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			1: {plugins.IssuerName: &oldIssuerPlugin{impl: oldIssuer{declareIntrospect: declareIntrospect}}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
