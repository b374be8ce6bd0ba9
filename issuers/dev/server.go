package dev

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/credhelper/credhelper/issuers/momento/authpb"
	"github.com/credhelper/credhelper/provider"
)

// Server is the dev issuer. Create it with NewServer (then Serve or Start)
// or, in one call, with Listen.
type Server struct {
	opts Options
	key  ed25519.PrivateKey

	mu sync.Mutex
	// refreshTokens, faults and every family reachable from them are
	// guarded by mu.
	refreshTokens map[string]*refreshState
	faults        []Fault

	stats counters

	grpc    *grpc.Server
	http    *http.Server
	tlsConf *tls.Config    // server side; nil without Options.TLS
	roots   *x509.CertPool // trusts the self-signed certificate
	certPEM []byte

	addr      atomic.Pointer[string]
	closing   chan struct{}
	closeOnce sync.Once
}

// counters are the call counts Stats reports.
type counters struct {
	generates, refreshes, refreshAttempts, rejected, reuses, graceReuses, familiesRevoked, faults, introspections atomic.Uint64
}

// Stats are the server's call counters since it started. The JSON names are
// those GET /stats returns.
type Stats struct {
	// Generates counts pairs minted by GenerateApiToken, the OAuth2
	// client_credentials grant and Mint.
	Generates uint64 `json:"generates"`
	// Refreshes counts successful refreshes.
	Refreshes uint64 `json:"refreshes"`
	// RefreshAttempts counts every refresh request that reached the
	// refresh logic, whatever its outcome.
	RefreshAttempts uint64 `json:"refreshAttempts"`
	// Rejected counts refused refreshes and generates (bad token, bad
	// session token or client, expired key, reuse).
	Rejected uint64 `json:"rejected"`
	// Reuses counts presentations of an already spent refresh token. A
	// correct fleet of clients keeps it at 0.
	Reuses uint64 `json:"reuses"`
	// GraceReuses counts spent refresh tokens presented again within
	// Options.ReuseGrace and answered with the same pair.
	GraceReuses uint64 `json:"graceReuses"`
	// FamiliesRevoked counts token families revoked by reuse detection.
	FamiliesRevoked uint64 `json:"familiesRevoked"`
	// Faults counts failures injected by FailNextRefreshes.
	Faults uint64 `json:"faults"`
	// Introspections counts RFC 7662 introspection requests answered.
	Introspections uint64 `json:"introspections"`
}

// NewServer returns a Server that is not yet listening.
func NewServer(optFns ...func(*Options)) (*Server, error) {
	var o Options
	o.defaults()
	for _, fn := range optFns {
		fn(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:          o,
		key:           newSigningKey(o.SigningKey),
		refreshTokens: make(map[string]*refreshState),
		closing:       make(chan struct{}),
	}
	if o.TLS {
		if err := s.makeCert(); err != nil {
			return nil, err
		}
	}
	s.grpc = grpc.NewServer()
	authpb.RegisterAuthServer(s.grpc, &authService{s: s})

	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", s.handleToken)
	mux.HandleFunc("GET /stats", s.handleStats)
	mux.HandleFunc("POST /oauth2/introspect", s.handleIntrospect)
	var protos http.Protocols
	protos.SetHTTP1(true)
	if o.TLS {
		protos.SetHTTP2(true)
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	s.http = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				s.grpc.ServeHTTP(w, r)
				return
			}
			mux.ServeHTTP(w, r)
		}),
		Protocols:         &protos,
		TLSConfig:         s.tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Listen creates a Server, listens on addr (such as "127.0.0.1:0") and
// serves in the background until ctx is done or Close is called. It is the
// one call `credhelper dev-issuer` needs:
//
//	srv, err := dev.Listen(ctx, "127.0.0.1:7777")
//	// gRPC (Momento protocol): srv.Addr(); OAuth2: srv.TokenURL(); srv.StatsURL()
func Listen(ctx context.Context, addr string, optFns ...func(*Options)) (*Server, error) {
	s, err := NewServer(optFns...)
	if err != nil {
		return nil, err
	}
	if err := s.Start(addr); err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.closing:
		}
	}()
	return s, nil
}

// Start listens on addr and serves in the background until Close.
func (s *Server) Start(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dev: listen on %s: %w", addr, err)
	}
	s.setAddr(l)
	go func() { _ = s.Serve(l) }()
	return nil
}

// Serve serves on l until Close; it returns nil after Close.
func (s *Server) Serve(l net.Listener) error {
	s.setAddr(l)
	var err error
	if s.tlsConf != nil {
		err = s.http.ServeTLS(l, "", "")
	} else {
		err = s.http.Serve(l)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) setAddr(l net.Listener) {
	a := l.Addr().String()
	s.addr.Store(&a)
}

// Close stops serving, closes every connection and ends delayed refreshes.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		err = s.http.Close()
		s.grpc.Stop()
	})
	return err
}

// Addr is the host:port the server listens on ("" before it listens). The
// Momento issuer dials it as its control endpoint.
func (s *Server) Addr() string {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// URL is the server's base URL, http:// or https:// with Options.TLS.
func (s *Server) URL() string {
	scheme := "http"
	if s.tlsConf != nil {
		scheme = "https"
	}
	return scheme + "://" + s.Addr()
}

// TokenURL is the OAuth2 token endpoint.
func (s *Server) TokenURL() string { return s.URL() + "/oauth2/token" }

// IntrospectionURL is the RFC 7662 introspection endpoint.
func (s *Server) IntrospectionURL() string { return s.URL() + "/oauth2/introspect" }

// StatsURL is the JSON counters endpoint.
func (s *Server) StatsURL() string { return s.URL() + "/stats" }

// Endpoint is the cell host minted tokens are valid for.
func (s *Server) Endpoint() string { return s.opts.Endpoint }

// SessionToken is the session token GenerateApiToken accepts.
func (s *Server) SessionToken() string { return s.opts.SessionToken }

// ClientID and ClientSecret are the OAuth2 client credentials the token
// endpoint accepts.
func (s *Server) ClientID() string { return s.opts.ClientID }

// ClientSecret: see ClientID.
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Generates:       s.stats.generates.Load(),
		Refreshes:       s.stats.refreshes.Load(),
		RefreshAttempts: s.stats.refreshAttempts.Load(),
		Rejected:        s.stats.rejected.Load(),
		Reuses:          s.stats.reuses.Load(),
		GraceReuses:     s.stats.graceReuses.Load(),
		FamiliesRevoked: s.stats.familiesRevoked.Load(),
		Faults:          s.stats.faults.Load(),
		Introspections:  s.stats.introspections.Load(),
	}
}

// Mint mints a first pair in-process, as GenerateApiToken would, without a
// session token. req.Lifetime (or req.Never) sets the lifetime; the other
// fields are ignored.
func (s *Server) Mint(req provider.GenerateRequest) (provider.Pair, error) {
	lifetime, err := lifetimeOf(req.Lifetime, req.Never)
	if err != nil {
		return provider.Pair{}, err
	}
	p, err := s.generate(lifetime)
	if err != nil {
		return provider.Pair{}, err
	}
	return provider.Pair{AuthToken: p.apiKey, RefreshToken: p.refreshToken, ValidUntil: p.validUntil, Endpoint: p.endpoint}, nil
}

func lifetimeOf(d time.Duration, never bool) (time.Duration, error) {
	if never {
		return 0, nil
	}
	if d < time.Second {
		return 0, fmt.Errorf("dev: lifetime %v is under one second: ask for at least 1s, or never", d)
	}
	return d.Truncate(time.Second), nil
}

// ClientTLSConfig returns a client TLS config that trusts the server's
// self-signed certificate, or nil when the server speaks plaintext.
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.roots == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12}
}

// CertificatePEM returns the self-signed certificate in PEM form (for a
// CLI to write where clients can trust it), or nil without Options.TLS.
func (s *Server) CertificatePEM() []byte { return s.certPEM }

// makeCert generates a self-signed certificate for loopback and the
// endpoint's hosts.
func (s *Server) makeCert() error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("dev: generate TLS key: %w", err)
	}
	now := time.Now()
	ep := s.opts.Endpoint
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "credhelper dev issuer"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", ep, "control." + ep, "cache." + ep, "token." + ep},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return fmt.Errorf("dev: self-sign TLS certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("dev: parse TLS certificate: %w", err)
	}
	s.roots = x509.NewCertPool()
	s.roots.AddCert(cert)
	s.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s.tlsConf = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}
	return nil
}

// delay waits Options.RefreshDelay, or until the server closes. It
// deliberately ignores the request's context: a real issuer that received
// a request may finish it after the client gave up.
func (s *Server) delay() error {
	if s.opts.RefreshDelay <= 0 {
		return nil
	}
	t := time.NewTimer(s.opts.RefreshDelay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.closing:
		return errors.New("dev: server closing")
	}
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats())
}
