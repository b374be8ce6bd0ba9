package momento

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"

	"github.com/credhelper/credhelper/issuers/momento/authpb"
	"github.com/credhelper/credhelper/provider"
)

// DefaultTimeout bounds one call (connecting and the RPC) unless
// Options.Timeout says otherwise.
const DefaultTimeout = 30 * time.Second

// maxValidUntil is the last second of year 9999.
const maxValidUntil = 253402300799

// Options configure an Issuer.
type Options struct {
	// Addr is the control endpoint as host:port. Empty means
	// control.<endpoint>:443, the endpoint decoded from the pair's auth
	// token (or, for Generate, from the session token).
	Addr string
	// TLSConfig configures TLS; nil means the system roots. The server
	// name defaults to Addr's host.
	TLSConfig *tls.Config
	// Insecure speaks plaintext gRPC. It requires Addr and is meant for a
	// loopback dev issuer only.
	Insecure bool
	// Timeout bounds each call, connection included; default
	// DefaultTimeout. The caller's context may end it sooner.
	Timeout time.Duration
	// Clock returns now, to decide whether a pair has expired; default
	// time.Now.
	Clock func() time.Time
	// Logger receives debug lines about calls, never a token; default
	// silent.
	Logger *slog.Logger
	// ShareIdle, when positive, keeps one connection per endpoint open
	// until it has been idle this long, and makes concurrent and nearby
	// calls share it (HTTP/2 multiplexing) instead of each dialing its own:
	// an agent refreshing many profiles at once keeps one connection, not
	// one per refresh. A call that fails drops the connection, so its retry
	// dials afresh. Zero (the default) dials for every call, so that an
	// unreachable issuer is always found before a request is sent.
	ShareIdle time.Duration
}

// Issuer refreshes and generates Momento API keys. It implements
// provider.Issuer and provider.Generator.
// With Options.ShareIdle it keeps connections, which Close releases.
type Issuer struct {
	opts Options

	mu    sync.Mutex // guards conns
	conns map[string]*grpcConn
}

// grpcConn is a cached connection and the recorder of its dial errors.
type grpcConn struct {
	conn *grpc.ClientConn
	rec  *recorder
}

var (
	_ provider.Issuer              = (*Issuer)(nil)
	_ provider.Generator           = (*Issuer)(nil)
	_ provider.RefreshPolicyIssuer = (*Issuer)(nil)
)

// RefreshPolicy reports Momento's: a refresh authenticates with the current
// key, so a lineage ends when its key expires, and a rejected refresh does
// not revoke the current key, which stays usable until it expires.
func (i *Issuer) RefreshPolicy() provider.RefreshPolicy { return provider.RefreshPolicy{} }

// New returns an Issuer.
func New(optFns ...func(*Options)) (*Issuer, error) {
	o := Options{Timeout: DefaultTimeout, Clock: time.Now, Logger: slog.New(slog.DiscardHandler)}
	for _, fn := range optFns {
		fn(&o)
	}
	switch {
	case o.Addr != "" && !validHostPort(o.Addr):
		return nil, fmt.Errorf("momento: Addr %q is not host:port: use e.g. control.cell-1.example.com:443 or 127.0.0.1:7777", o.Addr)
	case o.Insecure && o.Addr == "":
		return nil, errors.New("momento: Insecure needs an explicit Addr: plaintext is for a loopback dev issuer, never Momento's own endpoints")
	case o.Insecure && !provider.LoopbackAddr(o.Addr):
		return nil, fmt.Errorf("momento: plaintext to %s, which is not a loopback address, would send the refresh token and API key across the network in cleartext: use TLS, or plaintext only to 127.0.0.1, ::1 or localhost (a local dev issuer)", o.Addr)
	case o.Insecure && o.TLSConfig != nil:
		return nil, errors.New("momento: set Insecure or TLSConfig, not both")
	case o.Timeout <= 0:
		return nil, fmt.Errorf("momento: Timeout %v must be positive", o.Timeout)
	case o.Clock == nil:
		return nil, errors.New("momento: Clock is nil: leave it unset for time.Now")
	case o.Logger == nil:
		return nil, errors.New("momento: Logger is nil: leave it unset for a silent logger")
	}
	return &Issuer{opts: o}, nil
}

func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}

// Refresh spends pair.RefreshToken for a new pair with RefreshApiToken,
// sending the current key as api_key and in the authorization metadata.
//
// A pair that has already expired is refused without a call: Momento
// needs the current key to be valid to refresh, so the lineage can only be
// restarted by a person (credhelper generate or put).
func (i *Issuer) Refresh(ctx context.Context, pair provider.Pair) (provider.Pair, error) {
	// Refusals before anything is sent also say so (ErrNotDelivered): the
	// refresh token is unspent, and the engine releases its claim.
	if pair.AuthToken == "" || pair.RefreshToken == "" {
		return provider.Pair{}, fmt.Errorf("momento: refresh not sent: the pair lacks an auth token or a refresh token: %w: %w", provider.ErrInvalidRecord, provider.ErrNotDelivered)
	}
	if now := i.opts.Clock(); !pair.Never() && !now.Before(pair.ValidUntil) {
		return provider.Pair{}, fmt.Errorf("momento: refresh not sent: the key expired at %s and Momento refreshes only a still-valid key: %w: %w",
			pair.ValidUntil.UTC().Format(time.RFC3339), provider.ErrExpired, provider.ErrNotDelivered)
	}
	endpoint, err := pair.ResolveEndpoint()
	if err != nil && i.opts.Addr == "" {
		return provider.Pair{}, fmt.Errorf("momento: cannot tell which control endpoint to call: %w", err)
	}
	addr := i.addr(endpoint)
	if err := sendable("refresh", addr, field{"api key", pair.AuthToken}, field{"refresh token", pair.RefreshToken}); err != nil {
		return provider.Pair{}, err
	}
	log := i.opts.Logger.With("addr", addr, "generation", pair.Generation)
	log.Debug("momento: refreshing")

	var resp *authpb.XRefreshApiTokenResponse
	err = i.call(ctx, addr, pair.AuthToken, func(ctx context.Context, c authpb.AuthClient) error {
		var err error
		resp, err = c.RefreshApiToken(ctx, &authpb.XRefreshApiTokenRequest{ApiKey: pair.AuthToken, RefreshToken: pair.RefreshToken}, grpc.WaitForReady(false))
		return err
	})
	if err != nil {
		err = classify(ctx, "refresh", addr, err, true, pair.AuthToken, pair.RefreshToken)
		log.Debug("momento: refresh failed", "error", err)
		return provider.Pair{}, err
	}
	out, err := toPair(resp.GetApiKey(), resp.GetRefreshToken(), resp.GetEndpoint(), resp.GetValidUntil(), endpoint)
	if err != nil {
		return provider.Pair{}, fmt.Errorf("momento: refresh at %s: %w", addr, err)
	}
	out.IssuedAt = i.opts.Clock().Truncate(time.Second)
	log.Debug("momento: refreshed", "pair", out)
	return out, nil
}

// Generate mints a first pair with GenerateApiToken, authorized by
// req.SessionToken (sent as auth_token and in the authorization metadata).
// A zero req.Scope asks for a super-user key.
func (i *Issuer) Generate(ctx context.Context, req provider.GenerateRequest) (provider.Pair, error) {
	if req.SessionToken == "" {
		return provider.Pair{}, errors.New("momento: generate needs a session token: pass one with --session-token-env")
	}
	gr := &authpb.XGenerateApiTokenRequest{AuthToken: req.SessionToken, Permissions: permissions(req.Scope), Description: req.Description}
	switch {
	case req.Never:
		gr.Expiry = &authpb.XGenerateApiTokenRequest_Never_{Never: &authpb.XGenerateApiTokenRequest_Never{}}
	case req.Lifetime >= time.Second && req.Lifetime.Seconds() <= float64(^uint32(0)):
		gr.Expiry = &authpb.XGenerateApiTokenRequest_Expires_{Expires: &authpb.XGenerateApiTokenRequest_Expires{ValidForSeconds: uint32(req.Lifetime / time.Second)}}
	default:
		return provider.Pair{}, fmt.Errorf("momento: lifetime %v is out of range: ask for at least 1s (e.g. --ttl 24h) or --never", req.Lifetime)
	}
	var endpoint string
	if i.opts.Addr == "" {
		info, err := provider.ParseAuthToken(req.SessionToken)
		if err != nil || info.Endpoint == "" {
			return provider.Pair{}, fmt.Errorf("momento: the session token does not name an endpoint: set the issuer address (momento:HOST:PORT): %w", provider.ErrInvalidToken)
		}
		endpoint = info.Endpoint
	}
	addr := i.addr(endpoint)
	if err := sendable("generate", addr, field{"session token", req.SessionToken}); err != nil {
		return provider.Pair{}, err
	}
	if !utf8.ValidString(req.Description) {
		return provider.Pair{}, fmt.Errorf("momento: generate not sent to %s: the description is not UTF-8 text: %w", addr, provider.ErrNotDelivered)
	}
	i.opts.Logger.Debug("momento: generating", "addr", addr, "never", req.Never)
	var resp *authpb.XGenerateApiTokenResponse
	err := i.call(ctx, addr, req.SessionToken, func(ctx context.Context, c authpb.AuthClient) error {
		var err error
		resp, err = c.GenerateApiToken(ctx, gr, grpc.WaitForReady(false))
		return err
	})
	if err != nil {
		return provider.Pair{}, classify(ctx, "generate", addr, err, false, req.SessionToken)
	}
	out, err := toPair(resp.GetApiKey(), resp.GetRefreshToken(), resp.GetEndpoint(), resp.GetValidUntil(), endpoint)
	if err != nil {
		return provider.Pair{}, fmt.Errorf("momento: generate at %s: %w", addr, err)
	}
	out.IssuedAt = i.opts.Clock().Truncate(time.Second)
	return out, nil
}

// field is a named request value checked by sendable.
type field struct{ name, value string }

// sendable checks, before anything is sent, that each token can travel in
// gRPC metadata (printable ASCII). One that cannot would fail the call
// locally, so the error is "not delivered" (the refresh token is unspent)
// and permanent (retrying cannot help). It names the value, never its
// content.
func sendable(op, addr string, fields ...field) error {
	for _, f := range fields {
		for i := 0; i < len(f.value); i++ {
			if c := f.value[i]; c < 0x20 || c > 0x7e {
				what := "a control character"
				if c >= 0x80 {
					what = "a non-ASCII character"
				}
				return fmt.Errorf("momento: %s not sent to %s: the %s contains %s at byte %d: %w", op, addr, f.name, what, i, provider.ErrNotDelivered)
			}
		}
	}
	return nil
}

func (i *Issuer) addr(endpoint string) string {
	if i.opts.Addr != "" {
		return i.opts.Addr
	}
	return net.JoinHostPort("control."+endpoint, "443")
}

// call opens a connection to addr, waits until it is ready (or reports the
// request as not delivered), and runs rpc with the authorization metadata.
func (i *Issuer) call(ctx context.Context, addr, authorization string, rpc func(context.Context, authpb.AuthClient) error) error {
	ctx, cancel := context.WithTimeout(ctx, i.opts.Timeout)
	defer cancel()
	if i.opts.ShareIdle <= 0 {
		conn, rec, err := i.dial(addr)
		if err != nil {
			return &notDeliveredError{err: err}
		}
		defer conn.Close()
		if err := waitReady(ctx, conn, rec); err != nil {
			return &notDeliveredError{err: err}
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
		return rpc(ctx, authpb.NewAuthClient(conn))
	}
	gc, err := i.conn(addr)
	if err != nil {
		return &notDeliveredError{err: err}
	}
	if err := waitReady(ctx, gc.conn, gc.rec); err != nil {
		// Dial afresh next time rather than wait out gRPC's reconnect
		// backoff, which would outlast the engine's own.
		i.drop(addr, gc)
		return &notDeliveredError{err: err}
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
	if err := rpc(ctx, authpb.NewAuthClient(gc.conn)); err != nil {
		i.drop(addr, gc) // a retry must not reuse a connection that may be dead
		return err
	}
	return nil
}

// conn returns the cached connection to addr, or a new one in place of a
// failed one (which would wait out gRPC's reconnect backoff). An idle or
// connecting one is shared: waitReady connects it, and tells a call that
// cannot connect as not delivered.
func (i *Issuer) conn(addr string) (*grpcConn, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if gc := i.conns[addr]; gc != nil {
		if st := gc.conn.GetState(); st != connectivity.TransientFailure && st != connectivity.Shutdown {
			return gc, nil
		}
		delete(i.conns, addr)
		gc.conn.Close()
	}
	conn, rec, err := i.dial(addr)
	if err != nil {
		return nil, err
	}
	if i.conns == nil {
		i.conns = map[string]*grpcConn{}
	}
	gc := &grpcConn{conn: conn, rec: rec}
	i.conns[addr] = gc
	return gc, nil
}

// drop closes gc and forgets it, unless another call replaced it already.
func (i *Issuer) drop(addr string, gc *grpcConn) {
	i.mu.Lock()
	if i.conns[addr] == gc {
		delete(i.conns, addr)
	}
	i.mu.Unlock()
	gc.conn.Close()
}

// Close closes the Issuer's connections. Calls after Close dial again.
func (i *Issuer) Close() error {
	i.mu.Lock()
	conns := i.conns
	i.conns = nil
	i.mu.Unlock()
	for _, gc := range conns {
		gc.conn.Close()
	}
	return nil
}

// toPair validates a response. fallbackEndpoint is used when the response
// names none.
func toPair(apiKey, refreshToken, endpoint string, validUntil uint64, fallbackEndpoint string) (provider.Pair, error) {
	if endpoint == "" {
		endpoint = fallbackEndpoint
	}
	p := provider.Pair{AuthToken: apiKey, RefreshToken: refreshToken, Endpoint: endpoint}
	if validUntil > maxValidUntil {
		return provider.Pair{}, fmt.Errorf("the response's valid_until %d is not epoch seconds: %w", validUntil, provider.ErrInvalidRecord)
	}
	if validUntil != 0 {
		p.ValidUntil = time.Unix(int64(validUntil), 0)
	}
	if err := p.Validate(); err != nil {
		return provider.Pair{}, fmt.Errorf("the issuer returned an unusable pair: %w", err)
	}
	return p, nil
}

func permissions(s provider.Scope) *authpb.Permissions {
	if len(s.Caches) == 0 && !s.ReadOnly {
		return &authpb.Permissions{Kind: &authpb.Permissions_SuperUser{SuperUser: authpb.SuperUserPermissions_SuperUser}}
	}
	cacheRole, topicRole := authpb.CacheRole_CacheReadWrite, authpb.TopicRole_TopicReadWrite
	if s.ReadOnly {
		cacheRole, topicRole = authpb.CacheRole_CacheReadOnly, authpb.TopicRole_TopicReadOnly
	}
	all := &authpb.PermissionsType_All{}
	var perms []*authpb.PermissionsType
	add := func(cacheSel func() (*authpb.PermissionsType_CachePermissions, *authpb.PermissionsType_TopicPermissions)) {
		cp, tp := cacheSel()
		perms = append(perms,
			&authpb.PermissionsType{Kind: &authpb.PermissionsType_CachePermissions_{CachePermissions: cp}},
			&authpb.PermissionsType{Kind: &authpb.PermissionsType_TopicPermissions_{TopicPermissions: tp}})
	}
	if len(s.Caches) == 0 {
		add(func() (*authpb.PermissionsType_CachePermissions, *authpb.PermissionsType_TopicPermissions) {
			return &authpb.PermissionsType_CachePermissions{Role: cacheRole, Cache: &authpb.PermissionsType_CachePermissions_AllCaches{AllCaches: all}, CacheItem: &authpb.PermissionsType_CachePermissions_AllItems{AllItems: all}},
				&authpb.PermissionsType_TopicPermissions{Role: topicRole, Cache: &authpb.PermissionsType_TopicPermissions_AllCaches{AllCaches: all}, Topic: &authpb.PermissionsType_TopicPermissions_AllTopics{AllTopics: all}}
		})
	}
	for _, name := range s.Caches {
		sel := &authpb.PermissionsType_CacheSelector{Kind: &authpb.PermissionsType_CacheSelector_CacheName{CacheName: name}}
		add(func() (*authpb.PermissionsType_CachePermissions, *authpb.PermissionsType_TopicPermissions) {
			return &authpb.PermissionsType_CachePermissions{Role: cacheRole, Cache: &authpb.PermissionsType_CachePermissions_CacheSelector{CacheSelector: sel}, CacheItem: &authpb.PermissionsType_CachePermissions_AllItems{AllItems: all}},
				&authpb.PermissionsType_TopicPermissions{Role: topicRole, Cache: &authpb.PermissionsType_TopicPermissions_CacheSelector{CacheSelector: sel}, Topic: &authpb.PermissionsType_TopicPermissions_AllTopics{AllTopics: all}}
		})
	}
	return &authpb.Permissions{Kind: &authpb.Permissions_Explicit{Explicit: &authpb.ExplicitPermissions{Permissions: perms}}}
}
