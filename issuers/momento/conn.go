package momento

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/credhelper/credhelper/provider"
)

// notDeliveredError marks a failure before the request was sent.
type notDeliveredError struct{ err error }

func (e *notDeliveredError) Error() string { return e.err.Error() }
func (e *notDeliveredError) Unwrap() error { return e.err }

// recorder keeps the last connection error (dial or TLS handshake), which
// gRPC's connectivity state alone does not tell.
type recorder struct {
	mu  sync.Mutex
	err error // guarded by mu
}

func (r *recorder) set(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func (r *recorder) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// recordingCreds records handshake failures of the wrapped credentials.
type recordingCreds struct {
	credentials.TransportCredentials
	rec *recorder
}

func (c recordingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		c.rec.set(fmt.Errorf("TLS handshake: %w", err))
	}
	return conn, info, err
}

func (c recordingCreds) Clone() credentials.TransportCredentials {
	return recordingCreds{TransportCredentials: c.TransportCredentials.Clone(), rec: c.rec}
}

// dial creates a connection to addr without connecting yet. The
// passthrough resolver hands addr to our dialer unresolved, so name
// resolution errors surface through the recorder like dial errors.
func (i *Issuer) dial(addr string) (*grpc.ClientConn, *recorder, error) {
	rec := &recorder{}
	var creds credentials.TransportCredentials
	if i.opts.Insecure {
		creds = insecure.NewCredentials()
	} else {
		cfg := i.opts.TLSConfig
		if cfg != nil {
			cfg = cfg.Clone()
		}
		creds = credentials.NewTLS(cfg)
	}
	dialer := func(ctx context.Context, a string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
		if err != nil {
			rec.set(err)
		}
		return c, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(recordingCreds{TransportCredentials: creds, rec: rec}),
		grpc.WithContextDialer(dialer),
		grpc.WithUserAgent("credhelper"),
	}
	if i.opts.ShareIdle > 0 {
		opts = append(opts, grpc.WithIdleTimeout(i.opts.ShareIdle))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("set up a connection: %w", err)
	}
	return conn, rec, nil
}

// waitReady connects and waits until the connection is ready. An error
// means nothing was sent on it.
func waitReady(ctx context.Context, conn *grpc.ClientConn, rec *recorder) error {
	conn.Connect()
	for {
		st := conn.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			if err := rec.get(); err != nil {
				return err
			}
			return fmt.Errorf("connection %s", strings.ToLower(st.String()))
		}
		if !conn.WaitForStateChange(ctx, st) {
			if err := rec.get(); err != nil {
				return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
			}
			return fmt.Errorf("while connecting: %w", ctx.Err())
		}
	}
}

// classify turns a call's error into credhelper's error kinds. secrets are
// removed from any text the server sent back.
func classify(ctx context.Context, op, addr string, err error, refresh bool, secrets ...string) error {
	var nd *notDeliveredError
	if errors.As(err, &nd) {
		return provider.Transient(fmt.Errorf("momento: %s not sent: cannot connect to %s: %s: %w", op, addr, provider.SanitizeMessage(nd.err.Error(), maxServerMessage, secrets...), provider.ErrNotDelivered))
	}
	st, _ := status.FromError(err)
	code, msg := st.Code(), provider.SanitizeMessage(st.Message(), maxServerMessage, secrets...)
	switch code {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument, codes.NotFound:
		if refresh {
			return fmt.Errorf("momento: %s refused by %s (%s: %s): %w", op, addr, code, msg, provider.ErrRefreshRejected)
		}
		if code == codes.Unauthenticated || code == codes.PermissionDenied {
			return fmt.Errorf("momento: %s refused by %s (%s: %s): check the session token: %w", op, addr, code, msg, provider.ErrPermission)
		}
		return fmt.Errorf("momento: %s refused by %s (%s: %s)", op, addr, code, msg)
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown, codes.Canceled:
		e := fmt.Errorf("momento: %s at %s failed after the request was sent, so it may have been processed (%s: %s)", op, addr, code, msg)
		if cerr := ctx.Err(); cerr != nil {
			e = fmt.Errorf("%w: %w", e, cerr)
		}
		return provider.Transient(e)
	default:
		return fmt.Errorf("momento: %s at %s failed (%s: %s)", op, addr, code, msg)
	}
}

// maxServerMessage bounds server-supplied text quoted in an error.
const maxServerMessage = 300
