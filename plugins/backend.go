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

func (c *backendClient) capabilities(ctx context.Context) (*pluginv1.BackendCapabilities, error) {
	caps, err := c.c.Capabilities(ctx, &pluginv1.BackendCapabilitiesRequest{})
	return caps, answerError(err)
}

func (c *backendClient) CheckWrite(ctx context.Context, key string) error {
	_, err := c.c.CheckWrite(ctx, &pluginv1.CheckWriteRequest{Key: key})
	return answerError(err)
}

// Backend is the provider.Backend a plugin process serves, seen from the
// host. It is safe for concurrent use; its process belongs to the Plugin
// that returned it.
type Backend struct {
	p *Plugin
}

var (
	_ provider.Backend         = (*Backend)(nil)
	_ provider.ReadOnlyBackend = (*Backend)(nil)
	_ provider.WriteChecker    = (*Backend)(nil)
)

// Load calls the plugin's Load.
func (b *Backend) Load(ctx context.Context, key string) (provider.Entry, error) {
	var e provider.Entry
	err := b.p.call(ctx, "Load", "", func(pr *proc) error {
		var err error
		e, err = pr.backend.Load(ctx, key)
		return err
	})
	return e, err
}

// CompareAndSwap calls the plugin's CompareAndSwap. A transient error may
// leave the swap done or not, as with any remote backend.
func (b *Backend) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	var v provider.Version
	err := b.p.call(ctx, "CompareAndSwap", "the swap may or may not have happened", func(pr *proc) error {
		var err error
		v, err = pr.backend.CompareAndSwap(ctx, key, expected, value)
		return err
	})
	return v, err
}

// ReadOnly reports whether the plugin's backend says it cannot be written.
// It starts the plugin if needed (bounded by Options.StartTimeout) and
// reports false when it cannot ask, leaving CompareAndSwap to tell.
func (b *Backend) ReadOnly() bool {
	ctx, cancel := context.WithTimeout(context.Background(), b.p.opts.StartTimeout+capabilitiesTimeout)
	defer cancel()
	caps, err := b.capabilities(ctx)
	if err != nil {
		b.p.log.Warn("plugins: cannot ask the plugin whether its backend is read-only", "plugin", b.p.name, "error", err)
		return false
	}
	return caps.GetReadOnly()
}

// CheckWrite checks that the caller may write key: provider.ErrReadOnly for
// a read-only backend, the plugin's answer if its backend can check writes,
// and nil (unknown) otherwise.
func (b *Backend) CheckWrite(ctx context.Context, key string) error {
	caps, err := b.capabilities(ctx)
	if err != nil {
		return err
	}
	if caps.GetReadOnly() {
		return fmt.Errorf("plugins: plugin %q serves a read-only backend: %w", b.p.name, provider.ErrReadOnly)
	}
	if !caps.GetWriteCheck() {
		return nil
	}
	return b.p.call(ctx, "CheckWrite", "", func(pr *proc) error { return pr.backend.CheckWrite(ctx, key) })
}

// capabilities returns the running process's backend capabilities, asking
// once per process.
func (b *Backend) capabilities(ctx context.Context) (*pluginv1.BackendCapabilities, error) {
	var caps *pluginv1.BackendCapabilities
	err := b.p.call(ctx, "Capabilities", "", func(pr *proc) error {
		pr.capsMu.Lock()
		defer pr.capsMu.Unlock()
		if pr.backendCaps == nil {
			c, err := pr.backend.capabilities(ctx)
			if err != nil {
				return err
			}
			pr.backendCaps = c
		}
		caps = pr.backendCaps
		return nil
	})
	return caps, err
}
