package adapters

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/credhelper/credhelper/provider"
)

// rotating is a provider whose token is "tok-N"; Refresh moves to N+1.
type rotating struct {
	mu        sync.Mutex
	gen       int
	refreshes atomic.Int32
	fail      error
	issued    time.Time // of the current pair, when refreshed
}

func (r *rotating) Credential(context.Context) (provider.Pair, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return provider.Pair{}, r.fail
	}
	p := provider.Pair{AuthToken: "tok-" + strconv.Itoa(r.gen), RefreshToken: "r", ValidUntil: time.Unix(1_900_000_000, 0)}
	if r.gen > 0 {
		p.IssuedAt = r.issued // a refresh's pair says when it was issued
	}
	return p, nil
}

func (r *rotating) Refresh(ctx context.Context) (provider.Pair, error) {
	r.refreshes.Add(1)
	r.mu.Lock()
	r.gen++
	r.issued = time.Now()
	r.mu.Unlock()
	return r.Credential(ctx)
}

// plain has no Refresh.
type plain struct{ p *rotating }

func (p plain) Credential(ctx context.Context) (provider.Pair, error) { return p.p.Credential(ctx) }

func TestTokenSource(t *testing.T) {
	ts := TokenSource(&rotating{})
	tok, err := ts.Token()
	if err != nil || tok.AccessToken != "tok-0" || tok.Type() != "Bearer" || !tok.Expiry.Equal(time.Unix(1_900_000_000, 0)) {
		t.Fatalf("Token = %+v, %v", tok, err)
	}
	if _, err := TokenSource(&rotating{fail: provider.ErrExpired}).Token(); !errors.Is(err, provider.ErrExpired) {
		t.Errorf("error %v does not keep its kind", err)
	}
	// oauth2's own client uses it as any TokenSource.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	res, err := oauth2.NewClient(context.Background(), ts).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "Bearer tok-0" {
		t.Errorf("server saw %q", b)
	}
}

// tokenServer answers 401 to a token accept refuses, else echoes the token
// and the body; it counts requests.
func tokenServer(t *testing.T, accept func(tok string) bool) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !accept(tok) {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "stale token")
			return
		}
		io.WriteString(w, tok+" "+string(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestTransportRefreshesOnceAndRetries(t *testing.T) {
	srv, calls := tokenServer(t, func(tok string) bool { return tok != "tok-0" })
	p := &rotating{}
	c := &http.Client{Transport: Transport(p, nil)}

	res, err := c.Post(srv.URL, "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "tok-1 payload" || p.refreshes.Load() != 1 || calls.Load() != 2 {
		t.Fatalf("status %d, body %q, refreshes %d, calls %d", res.StatusCode, b, p.refreshes.Load(), calls.Load())
	}
	// The next request goes out with the new token at once.
	res, err = c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || p.refreshes.Load() != 1 || calls.Load() != 3 {
		t.Errorf("second request: status %d, refreshes %d, calls %d", res.StatusCode, p.refreshes.Load(), calls.Load())
	}
}

func TestTransportRetriesOnlyOnce(t *testing.T) {
	srv, calls := tokenServer(t, func(string) bool { return false })
	p := &rotating{}
	res, err := (&http.Client{Transport: Transport(p, nil)}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 401 || string(b) != "stale token" || calls.Load() != 2 || p.refreshes.Load() != 1 {
		t.Errorf("status %d, body %q, calls %d, refreshes %d", res.StatusCode, b, calls.Load(), p.refreshes.Load())
	}
}

// TestTransportRejectedEverywhere: a server that rejects every token gets
// one forced refresh, not one per request: the refreshed pair is too new
// to be refreshed again for a rejection.
func TestTransportRejectedEverywhere(t *testing.T) {
	srv, _ := tokenServer(t, func(string) bool { return false })
	p := &rotating{}
	c := &http.Client{Transport: Transport(p, nil)}
	for range 3 {
		res, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if n := p.refreshes.Load(); n != 1 {
		t.Errorf("%d forced refreshes for 3 rejected requests, want 1", n)
	}
}

func TestTransportDoesNotReplayStreams(t *testing.T) {
	srv, calls := tokenServer(t, func(tok string) bool { return tok != "tok-0" })
	p := &rotating{}
	req, _ := http.NewRequest("POST", srv.URL, io.NopCloser(strings.NewReader("stream"))) // no GetBody
	res, err := (&http.Client{Transport: Transport(p, nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 || calls.Load() != 1 || p.refreshes.Load() != 0 {
		t.Errorf("status %d, calls %d, refreshes %d: a body that cannot be replayed must not be retried", res.StatusCode, calls.Load(), p.refreshes.Load())
	}
}

func TestTransportWithoutRefresher(t *testing.T) {
	srv, calls := tokenServer(t, func(tok string) bool { return tok != "tok-0" })
	res, err := (&http.Client{Transport: Transport(plain{&rotating{}}, nil)}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 || calls.Load() != 1 {
		t.Errorf("status %d, calls %d", res.StatusCode, calls.Load())
	}
}

// TestTransportSharesOneRefresh: requests rejected with the same token
// cause one refresh between them.
func TestTransportSharesOneRefresh(t *testing.T) {
	srv, _ := tokenServer(t, func(tok string) bool { return tok != "tok-0" })
	p := &rotating{}
	c := &http.Client{Transport: Transport(p, nil)}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Get(srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("status %d", res.StatusCode)
			}
		}()
	}
	wg.Wait()
	if n := p.refreshes.Load(); n != 1 {
		t.Errorf("%d refreshes for one rejected token, want 1", n)
	}
}

func TestTransportErrors(t *testing.T) {
	p := &rotating{fail: provider.ErrLineageBroken}
	_, err := (&http.Client{Transport: Transport(p, nil)}).Get("http://127.0.0.1:1/")
	if !errors.Is(err, provider.ErrLineageBroken) {
		t.Errorf("error %v does not keep its kind", err)
	}
}

func TestTransportCustomHeader(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get("X-Api-Key") }))
	defer srv.Close()
	res, err := (&http.Client{Transport: Transport(&rotating{}, nil, func(o *Options) { o.Header, o.BareToken = "X-Api-Key", true })}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got != "tok-0" {
		t.Errorf("header %q", got)
	}
}

// grpcServer serves the health service behind an interceptor that demands
// "authorization: Bearer tok-0".
func grpcServer(t *testing.T, tlsConf *tls.Config) string {
	t.Helper()
	check := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("authorization"); len(v) != 1 || v[0] != "Bearer tok-0" {
			return nil, status.Error(codes.Unauthenticated, "bad authorization")
		}
		return handler(ctx, req)
	}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(check)}
	if tlsConf != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConf)))
	}
	s := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func healthCheck(t *testing.T, addr string, opts ...grpc.DialOption) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return err // gRPC refuses some combinations before any call
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestPerRPCCredentials(t *testing.T) {
	// A TLS server with httptest's certificate (valid for 127.0.0.1).
	hs := httptest.NewTLSServer(http.NotFoundHandler())
	cert := hs.TLS.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(hs.Certificate())
	hs.Close()
	addr := grpcServer(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	tlsCreds := grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots}))

	if err := healthCheck(t, addr, tlsCreds, grpc.WithPerRPCCredentials(PerRPCCredentials(&rotating{}))); err != nil {
		t.Errorf("over TLS: %v", err)
	}
	if err := healthCheck(t, addr, tlsCreds); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without credentials: %v; the interceptor must refuse", err)
	}
	err := healthCheck(t, addr, tlsCreds, grpc.WithPerRPCCredentials(PerRPCCredentials(&rotating{fail: provider.ErrExpired})))
	if err == nil || !strings.Contains(err.Error(), provider.ErrExpired.Error()) {
		t.Errorf("failing provider: %v", err)
	}

	plainAddr := grpcServer(t, nil)
	err = healthCheck(t, plainAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(PerRPCCredentials(&rotating{})))
	if err == nil || !strings.Contains(err.Error(), "transport") {
		t.Errorf("plaintext without AllowInsecure: %v; gRPC must refuse to send the token", err)
	}
	err = healthCheck(t, plainAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(PerRPCCredentials(&rotating{}, func(o *Options) { o.AllowInsecure = true })))
	if err != nil {
		t.Errorf("plaintext with AllowInsecure: %v", err)
	}
}
