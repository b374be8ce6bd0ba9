package plugins

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/credhelper/credhelper/plugins/proto/credhelper/plugin/v1"
	"github.com/credhelper/credhelper/provider"
)

// Names under which a plugin process serves its parts (go-plugin's
// "plugin types").
const (
	// BackendName is the name of the provider.Backend a plugin serves.
	BackendName = "backend"
	// IssuerName is the name of the provider.Issuer a plugin serves.
	IssuerName = "issuer"
)

// ProtocolVersion is the newest plugin protocol version this package
// speaks: the gRPC package credhelper.plugin.v1.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake that host and plugin must share. The
// magic cookie only tells a binary run by hand that it is a plugin; it is
// not a security measure (checksum pinning and AutoMTLS are).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "CREDHELPER_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "d6f4c0a7e1b94a52b3a8f1e07c5d9e21",
}

// VersionedPlugins returns the plugin sets of every protocol version this
// package speaks, keyed by version, with the given implementations (nil on
// the host side). go-plugin negotiates the newest version both sides share.
func VersionedPlugins(b provider.Backend, i provider.Issuer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {
			BackendName: &BackendPlugin{Impl: b},
			IssuerName:  &IssuerPlugin{Impl: i},
		},
	}
}

// BackendPlugin is the go-plugin plugin type of a provider.Backend served
// over protocol version 1.
type BackendPlugin struct {
	// Plugin is embedded only to satisfy plugin.Plugin; net/rpc is not
	// served.
	plugin.NetRPCUnsupportedPlugin
	// Impl is the served backend; nil on the host side.
	Impl provider.Backend
}

var _ plugin.GRPCPlugin = (*BackendPlugin)(nil)

// GRPCServer registers the Backend service, if there is a backend to serve.
func (p *BackendPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return nil // calls then fail Unimplemented: provider.ErrUnsupported
	}
	pluginv1.RegisterBackendServer(s, &backendServer{impl: p.Impl})
	return nil
}

// GRPCClient returns the client shim for the Backend service.
func (p *BackendPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &backendClient{c: pluginv1.NewBackendClient(c)}, nil
}

// IssuerPlugin is the go-plugin plugin type of a provider.Issuer served
// over protocol version 1.
type IssuerPlugin struct {
	// Plugin is embedded only to satisfy plugin.Plugin; net/rpc is not
	// served.
	plugin.NetRPCUnsupportedPlugin
	// Impl is the served issuer; nil on the host side.
	Impl provider.Issuer
}

var _ plugin.GRPCPlugin = (*IssuerPlugin)(nil)

// GRPCServer registers the Issuer service, if there is an issuer to serve.
func (p *IssuerPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return nil // calls then fail Unimplemented: provider.ErrUnsupported
	}
	pluginv1.RegisterIssuerServer(s, &issuerServer{impl: p.Impl})
	return nil
}

// GRPCClient returns the client shim for the Issuer service.
func (p *IssuerPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &issuerClient{c: pluginv1.NewIssuerClient(c)}, nil
}
