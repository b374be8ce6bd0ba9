package dev

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// tokenResponse is RFC 6749 section 5.1's success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// RefreshTokenExpiresIn is GitHub's extension naming the refresh
	// token's lifetime; sent when Options.RefreshTTL is set.
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in,omitempty"`
	Scope                 string `json:"scope,omitempty"`
}

// handleToken is the OAuth2 token endpoint (RFC 6749 sections 5 and 6).
//
// grant_type=refresh_token spends the refresh token with rotation and reuse
// detection (without rotation under Options.NoRotate). The non-standard
// grant_type=client_credentials mints a first pair, refresh token included,
// for tests; its optional lifetime_seconds form field sets the lifetime (0
// for never; default Options.Lifetime).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "body is not a form")
		return
	}
	if !s.clientOK(w, r) {
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		s.refreshGrant(w, r)
	case "client_credentials":
		s.clientCredentialsGrant(w, r)
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "supported: refresh_token, client_credentials")
	}
}

// clientOK authenticates the client by HTTP Basic (RFC 6749 section 2.3.1,
// form-encoded id and secret) or by client_id/client_secret in the body,
// and answers 401 invalid_client when it fails.
func (s *Server) clientOK(w http.ResponseWriter, r *http.Request) bool {
	id, secret, basic := r.BasicAuth()
	if basic {
		if r.PostForm.Has("client_secret") {
			oauthError(w, http.StatusBadRequest, "invalid_request", "use one client authentication method, not both")
			return false
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			basic, id, secret = true, "", ""
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID)) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) == 1
	if idOK && secretOK && !(basic && s.opts.PostAuthOnly) {
		return true
	}
	s.stats.rejected.Add(1)
	s.opts.Logger.Info("dev: token request refused: client authentication failed", "protocol", "oauth2")
	if basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="credhelper-dev"`)
	}
	oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
	return false
}

func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request) {
	if err := s.delay(); err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "server closing")
		return
	}
	p, err := s.refresh(nil, r.PostForm.Get("refresh_token"))
	var rej *rejection
	switch {
	case errors.Is(err, errInjected):
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "injected fault")
		return
	case errors.As(err, &rej) && rej.kind == rejectArgument:
		oauthError(w, http.StatusBadRequest, "invalid_request", rej.reason)
		return
	case errors.As(err, &rej):
		s.opts.Logger.Info("dev: refresh refused", "protocol", "oauth2", "reason", rej.reason)
		oauthError(w, http.StatusBadRequest, "invalid_grant", rej.reason)
		return
	case err != nil:
		oauthError(w, http.StatusInternalServerError, "server_error", "internal error")
		return
	}
	s.opts.Logger.Info("dev: refreshed", "protocol", "oauth2", "family", p.family, "valid_until", p.validUntilSeconds())
	resp := s.tokenResponse(p, r.PostForm.Get("scope"))
	if s.opts.NoRotate {
		resp.RefreshToken = ""
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) clientCredentialsGrant(w http.ResponseWriter, r *http.Request) {
	lifetime := s.opts.Lifetime
	if v := r.PostForm.Get("lifetime_seconds"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "lifetime_seconds must be a whole number of seconds, 0 for never")
			return
		}
		lifetime = secondsDuration(int64(n))
	}
	p, err := s.generate(lifetime)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "internal error")
		return
	}
	s.opts.Logger.Info("dev: generated", "protocol", "oauth2", "family", p.family, "valid_until", p.validUntilSeconds())
	writeJSON(w, http.StatusOK, s.tokenResponse(p, r.PostForm.Get("scope")))
}

func (s *Server) tokenResponse(p issued, scope string) tokenResponse {
	resp := tokenResponse{AccessToken: p.accessToken, TokenType: "Bearer", RefreshToken: p.refreshToken, Scope: scope}
	now := s.opts.Clock()
	secondsUntil := func(t time.Time) int64 { return max(int64(math.Ceil(t.Sub(now).Seconds())), 1) }
	if !p.validUntil.IsZero() && !s.opts.OmitExpiresIn {
		resp.ExpiresIn = secondsUntil(p.validUntil)
	}
	if s.opts.RefreshTTL > 0 && !p.refreshUntil.IsZero() {
		resp.RefreshTokenExpiresIn = secondsUntil(p.refreshUntil)
	}
	return resp
}

// handleIntrospect is RFC 7662 token introspection for refresh tokens: an
// authenticated client learns whether a refresh token is still active
// (known, unspent, its family not revoked, not expired), without spending
// it.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "body is not a form")
		return
	}
	if !s.clientOK(w, r) {
		return
	}
	s.stats.introspections.Add(1)
	resp := map[string]any{"active": false}
	if exp, ok := s.refreshActive(r.PostForm.Get("token")); ok {
		resp["active"] = true
		resp["token_type"] = "refresh_token"
		if !exp.IsZero() {
			resp["exp"] = exp.Unix()
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func oauthError(w http.ResponseWriter, code int, errCode, desc string) {
	writeJSON(w, code, map[string]string{"error": errCode, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
