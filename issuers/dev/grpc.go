package dev

import (
	"context"
	"crypto/subtle"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/credhelper/credhelper/issuers/momento/authpb"
)

// authService implements Momento's auth.Auth service.
type authService struct {
	authpb.UnimplementedAuthServer
	s *Server
}

var _ authpb.AuthServer = (*authService)(nil)

// GenerateApiToken mints a first pair for a valid session token, taken
// from the request's auth_token or, when empty, the authorization metadata.
func (a *authService) GenerateApiToken(ctx context.Context, req *authpb.XGenerateApiTokenRequest) (*authpb.XGenerateApiTokenResponse, error) {
	s := a.s
	session := req.GetAuthToken()
	if session == "" {
		session = authorization(ctx)
	}
	if !s.sessionOK(session) {
		s.stats.rejected.Add(1)
		s.opts.Logger.Info("dev: generate refused: bad session token", "protocol", "grpc")
		return nil, status.Error(codes.Unauthenticated, "invalid session token")
	}
	var lifetime int64
	switch e := req.GetExpiry().(type) {
	case *authpb.XGenerateApiTokenRequest_Never_:
	case *authpb.XGenerateApiTokenRequest_Expires_:
		lifetime = int64(e.Expires.GetValidForSeconds())
		if lifetime == 0 {
			return nil, status.Error(codes.InvalidArgument, "expires.valid_for_seconds must be positive")
		}
	default:
		return nil, status.Error(codes.InvalidArgument, "expiry is required: never or expires")
	}
	p, err := s.generate(secondsDuration(lifetime))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.opts.Logger.Info("dev: generated", "protocol", "grpc", "family", p.family, "valid_until", p.validUntilSeconds())
	return &authpb.XGenerateApiTokenResponse{
		ApiKey: p.apiKey, RefreshToken: p.refreshToken, Endpoint: p.endpoint, ValidUntil: p.validUntilSeconds(),
	}, nil
}

// RefreshApiToken spends a refresh token. The authorization metadata must
// carry the api key being refreshed, as Momento's SDKs send it.
func (a *authService) RefreshApiToken(ctx context.Context, req *authpb.XRefreshApiTokenRequest) (*authpb.XRefreshApiTokenResponse, error) {
	s := a.s
	if err := s.delay(); err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	key := req.GetApiKey()
	if key == "" {
		s.stats.rejected.Add(1)
		return nil, status.Error(codes.InvalidArgument, "api_key is required")
	}
	if h := authorization(ctx); subtle.ConstantTimeCompare([]byte(h), []byte(key)) != 1 {
		s.stats.rejected.Add(1)
		return nil, status.Error(codes.Unauthenticated, "authorization metadata must carry the api key being refreshed")
	}
	p, err := s.refresh(&key, req.GetRefreshToken())
	if err != nil {
		s.opts.Logger.Info("dev: refresh refused", "protocol", "grpc", "reason", err.Error())
		return nil, grpcError(err)
	}
	s.opts.Logger.Info("dev: refreshed", "protocol", "grpc", "family", p.family, "valid_until", p.validUntilSeconds())
	return &authpb.XRefreshApiTokenResponse{
		ApiKey: p.apiKey, RefreshToken: p.refreshToken, Endpoint: p.endpoint, ValidUntil: p.validUntilSeconds(),
	}, nil
}

// grpcError maps the refresh logic's errors to the status codes Momento
// answers with.
func grpcError(err error) error {
	var r *rejection
	switch {
	case errors.Is(err, errInjected):
		return status.Error(codes.Unavailable, err.Error())
	case errors.As(err, &r) && r.kind == rejectArgument:
		return status.Error(codes.InvalidArgument, r.reason)
	case errors.As(err, &r) && r.kind == rejectAuth:
		return status.Error(codes.Unauthenticated, r.reason)
	case errors.As(err, &r):
		return status.Error(codes.PermissionDenied, r.reason)
	default:
		return status.Error(codes.Internal, err.Error())
	}
}

func authorization(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
