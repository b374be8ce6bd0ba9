package adapters

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc/credentials"

	"github.com/credhelper/credhelper/internal/rejected"
	"github.com/credhelper/credhelper/provider"
)

// Refresher is implemented by providers that can force one refresh, such
// as *refresh.Engine. Refresh returns the new pair, or a newer one another
// instance already committed.
type Refresher interface {
	Refresh(ctx context.Context) (provider.Pair, error)
}

// Options configure how the token is presented.
type Options struct {
	// Header is the HTTP header (or, lower-cased, the gRPC metadata key)
	// that carries the token; default "Authorization".
	Header string
	// Scheme precedes the token, separated by a space; default "Bearer".
	Scheme string
	// BareToken sends the token alone, without a scheme, as Momento's
	// gRPC API expects.
	BareToken bool
	// AllowInsecure lets PerRPCCredentials send the token over a
	// connection without transport security (a loopback test server).
	AllowInsecure bool
}

func options(optFns []func(*Options)) Options {
	o := Options{Header: "Authorization", Scheme: "Bearer"}
	for _, fn := range optFns {
		fn(&o)
	}
	return o
}

func (o Options) value(token string) string {
	if o.BareToken {
		return token
	}
	return o.Scheme + " " + token
}

// token returns the pair's auth token, refusing an empty one.
func token(p provider.Pair) (string, error) {
	if p.AuthToken == "" {
		return "", errors.New("adapters: the credential has an empty auth token")
	}
	return p.AuthToken, nil
}

// TokenSource returns an oauth2.TokenSource serving p's auth token as a
// Bearer token with the pair's expiry (none for a pair that never
// expires). oauth2.TokenSource has no context; each Token call uses
// context.Background(), and p bounds its own waits (the engine by its
// issuer timeout and lease).
func TokenSource(p provider.CredentialProvider) oauth2.TokenSource {
	return tokenSource{p}
}

type tokenSource struct{ p provider.CredentialProvider }

// Token implements oauth2.TokenSource.
func (s tokenSource) Token() (*oauth2.Token, error) {
	pair, err := s.p.Credential(context.Background())
	if err != nil {
		return nil, fmt.Errorf("adapters: %w", err)
	}
	tok, err := token(pair)
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: tok, TokenType: "Bearer", Expiry: pair.ValidUntil}, nil
}

// Transport returns an http.RoundTripper that sends each request through
// base (http.DefaultTransport when nil) with the header set from p. When
// the answer is 401 Unauthorized and the request's body can be sent again
// (no body, or GetBody set, as http.NewRequest does for in-memory bodies),
// it asks p for a newer token: the one another request already refreshed
// to, or else one forced refresh through Refresher, unless the rejected
// pair is younger than a minute. With a token different
// from the rejected one it retries once; otherwise the 401 is returned as
// it came.
func Transport(p provider.CredentialProvider, base http.RoundTripper, optFns ...func(*Options)) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{p: p, base: base, opts: options(optFns)}
}

type transport struct {
	p    provider.CredentialProvider
	base http.RoundTripper
	opts Options

	// mu serialises forced refreshes; rejected and next (guarded by mu)
	// remember the last refresh, so that requests rejected with the same
	// token share one refresh.
	mu       sync.Mutex
	rejected string
	next     provider.Pair
}

// RoundTrip implements http.RoundTripper. It does not modify req.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	pair, err := t.p.Credential(ctx)
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("adapters: %w", err)
	}
	sent, err := token(pair)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	res, err := t.base.RoundTrip(t.authorized(req, sent))
	if err != nil || res.StatusCode != http.StatusUnauthorized || !replayable(req) {
		return res, err
	}
	fresh, err := t.newer(ctx, sent)
	if err != nil || fresh == "" {
		return res, nil // nothing better to offer: the caller sees the 401
	}
	retry := t.authorized(req, fresh)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return res, nil
		}
		retry.Body = body
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	res.Body.Close()
	return t.base.RoundTrip(retry)
}

func (t *transport) authorized(req *http.Request, tok string) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set(t.opts.Header, t.opts.value(tok))
	return r
}

// newer returns a token other than sent: p's current one if it already
// moved on, else one forced refresh's; "" when there is none.
func (t *transport) newer(ctx context.Context, sent string) (string, error) {
	p, err := t.p.Credential(ctx)
	if err == nil && p.AuthToken != "" && !same(p.AuthToken, sent) {
		return p.AuthToken, nil
	}
	r, ok := t.p.(Refresher)
	if !ok || err == nil && !rejected.ShouldRefresh(p, time.Now()) {
		// A pair this new was issued for a rejection already: another
		// refresh would only rotate the lineage (a server that rejects
		// every token costs one refresh a minute, not one per request).
		return "", nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rejected != "" && same(t.rejected, sent) {
		return t.next.AuthToken, nil
	}
	p, err = r.Refresh(ctx)
	if err != nil {
		return "", err
	}
	if p.AuthToken == "" || same(p.AuthToken, sent) {
		return "", nil
	}
	t.rejected, t.next = sent, p
	return p.AuthToken, nil
}

func same(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// replayable reports whether req's body can be sent a second time.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// closeBody honours RoundTrip's contract to close the body on error.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// PerRPCCredentials returns gRPC per-RPC credentials that send p's token as
// the "authorization" metadata ("Bearer TOKEN" unless Options say
// otherwise). They require transport security unless AllowInsecure is set:
// gRPC then refuses to send them over a plaintext connection.
func PerRPCCredentials(p provider.CredentialProvider, optFns ...func(*Options)) credentials.PerRPCCredentials {
	return perRPC{p: p, opts: options(optFns)}
}

type perRPC struct {
	p    provider.CredentialProvider
	opts Options
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c perRPC) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	pair, err := c.p.Credential(ctx)
	if err != nil {
		return nil, fmt.Errorf("adapters: %w", err)
	}
	tok, err := token(pair)
	if err != nil {
		return nil, err
	}
	return map[string]string{strings.ToLower(c.opts.Header): c.opts.value(tok)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (c perRPC) RequireTransportSecurity() bool { return !c.opts.AllowInsecure }
