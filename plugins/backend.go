package plugins

import (
	"context"
	"errors"
	"fmt"

	pluginv1 "github.com/credhelper/credhelper/plugins/proto/credhelper/plugin/v1"
	"github.com/credhelper/credhelper/provider"
)

// backendServer is the plugin-side shim: it serves a provider.Backend as the
// Backend gRPC service.
type backendServer struct {
	pluginv1.UnimplementedBackendServer
	impl provider.Backend
}

func (s *backendServer) Load(ctx context.Context, req *pluginv1.LoadRequest) (*pluginv1.LoadResponse, error) {
	e, err := s.impl.Load(ctx, req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.LoadResponse{Value: e.Value, Version: string(e.Version)}, nil
}

func (s *backendServer) CompareAndSwap(ctx context.Context, req *pluginv1.CompareAndSwapRequest) (*pluginv1.CompareAndSwapResponse, error) {
	v, err := s.impl.CompareAndSwap(ctx, req.GetKey(), provider.Version(req.GetExpectedVersion()), req.GetValue())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.CompareAndSwapResponse{Version: string(v)}, nil
}

func (s *backendServer) Capabilities(context.Context, *pluginv1.BackendCapabilitiesRequest) (*pluginv1.BackendCapabilities, error) {
	caps := &pluginv1.BackendCapabilities{}
	if ro, ok := s.impl.(provider.ReadOnlyBackend); ok {
		caps.ReadOnly = ro.ReadOnly()
	}
	_, caps.WriteCheck = s.impl.(provider.WriteChecker)
	return caps, nil
}

func (s *backendServer) CheckWrite(ctx context.Context, req *pluginv1.CheckWriteRequest) (*pluginv1.CheckWriteResponse, error) {
	wc, ok := s.impl.(provider.WriteChecker)
	if !ok {
		return nil, toStatus(fmt.Errorf("plugins: this backend cannot check writes: %w", provider.ErrUnsupported))
	}
	if err := wc.CheckWrite(ctx, req.GetKey()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.CheckWriteResponse{}, nil
}

// backendClient is the host-side shim: it calls the Backend gRPC service
// and decodes its errors. It knows nothing of the process behind it.
type backendClient struct {
	c pluginv1.BackendClient
}

var _ provider.Backend = (*backendClient)(nil)

func (c *backendClient) Load(ctx context.Context, key string) (provider.Entry, error) {
	resp, err := c.c.Load(ctx, &pluginv1.LoadRequest{Key: key})
	if err != nil {
		return provider.Entry{}, answerError(err)
	}
	if resp.GetVersion() == "" {
		return provider.Entry{}, errors.New("the plugin broke the protocol: Load returned an empty version")
	}
	return provider.Entry{Value: resp.GetValue(), Version: provider.Version(resp.GetVersion())}, nil
}

func (c *backendClient) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	resp, err := c.c.CompareAndSwap(ctx, &pluginv1.CompareAndSwapRequest{Key: key, ExpectedVersion: string(expected), Value: value})
	if err != nil {
		return "", answerError(err)
	}
	if resp.GetVersion() == "" {
		return "", errors.New("the plugin broke the protocol: CompareAndSwap returned an empty version")
	}
	return provider.Version(resp.GetVersion()), nil
}

func (c *backendClient) CheckWrite(ctx context.Context, key string) error {
	_, err := c.c.CheckWrite(ctx, &pluginv1.CheckWriteRequest{Key: key})
	return answerError(err)
}

// backend is the provider.Backend a plugin process serves, seen from the
// host, with the capabilities it declared when opened. It is a
// provider.ReadOnlyBackend, answered from that declaration; Plugin.Backend
// adds provider.WriteChecker when the plugin declared it.
type backend struct {
	bound[backendCaps]
}

// writeChecker adds CheckWrite to a backend that declared it.
type writeChecker struct{ b *backend }

var (
	_ provider.ReadOnlyBackend = (*backend)(nil)
	_ provider.WriteChecker    = struct {
		*backend
		writeChecker
	}{}
)

// Backend returns the provider.Backend the plugin serves, starting the
// plugin process if it does not run and asking which capabilities its
// backend declares. The value implements provider.ReadOnlyBackend,
// answered from that declaration without I/O, and provider.WriteChecker
// only if the plugin declared it. It fails with an error wrapping
// provider.ErrUnsupported if the plugin serves no backend.
//
// The value is safe for concurrent use; its process belongs to p. After a
// restart its calls fail with ErrCapabilitiesChanged if the new process
// declares other capabilities.
func (p *Plugin) Backend(ctx context.Context) (provider.Backend, error) {
	bd, err := openPart(ctx, p, "backend", (*proc).backendCapabilities)
	if err != nil {
		return nil, err
	}
	b := &backend{bd}
	if b.caps.writeCheck {
		return struct {
			*backend
			writeChecker
		}{b, writeChecker{b}}, nil
	}
	return b, nil
}

// Load calls the plugin's Load.
func (b *backend) Load(ctx context.Context, key string) (provider.Entry, error) {
	var e provider.Entry
	err := b.call(ctx, "Load", "", func(pr *proc) error {
		var err error
		e, err = pr.backend.Load(ctx, key)
		return err
	})
	return e, err
}

// CompareAndSwap calls the plugin's CompareAndSwap. A transient error may
// leave the swap done or not, as with any remote backend.
func (b *backend) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	var v provider.Version
	err := b.call(ctx, "CompareAndSwap", "the swap may or may not have happened", func(pr *proc) error {
		var err error
		v, err = pr.backend.CompareAndSwap(ctx, key, expected, value)
		return err
	})
	return v, err
}

// ReadOnly reports whether the plugin's backend declared, when opened,
// that it cannot be written. It makes no call.
func (b *backend) ReadOnly() bool { return b.caps.readOnly }

// CheckWrite checks that the caller may write key: provider.ErrReadOnly
// for a read-only backend, without a call; the plugin's answer otherwise.
func (w writeChecker) CheckWrite(ctx context.Context, key string) error {
	if w.b.caps.readOnly {
		return fmt.Errorf("plugins: plugin %q serves a read-only backend: %w", w.b.p.name, provider.ErrReadOnly)
	}
	return w.b.call(ctx, "CheckWrite", "", func(pr *proc) error { return pr.backend.CheckWrite(ctx, key) })
}
