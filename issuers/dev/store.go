package dev

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Fault is a failure the server injects into upcoming refreshes, for
// testing how clients classify issuer failures.
type Fault int

const (
	// FaultUnavailable refuses the refresh before the refresh token is
	// looked at (gRPC Unavailable, HTTP 503): the token stays unspent.
	FaultUnavailable Fault = iota + 1
	// FaultLoseResponse processes the refresh (the token is spent and a new
	// pair minted) and then answers Unavailable / HTTP 503, as when a
	// response is lost on the way back: the client cannot know the token is
	// spent.
	FaultLoseResponse
)

// rejectKind says why a refresh or generate was refused.
type rejectKind int

const (
	rejectAuth     rejectKind = iota + 1 // bad session token, client or api key
	rejectGrant                          // refresh token unknown, spent, revoked, expired
	rejectArgument                       // malformed request
)

// rejection is a refusal whose reason is safe to send to the client: it
// never contains a token.
type rejection struct {
	kind   rejectKind
	reason string
}

func (r *rejection) Error() string { return "dev: " + r.reason }

// errInjected is the failure an injected Fault produces.
var errInjected = errors.New("dev: injected fault: issuer unavailable")

// family is every pair descended from one Generate.
type family struct {
	id       string
	lifetime time.Duration // 0: pairs never expire
	revoked  bool
}

// refreshState is what the server remembers about one refresh token.
type refreshState struct {
	fam        *family
	validUntil time.Time // zero: never
	spent      bool
	spentAt    time.Time // when it was spent
	answer     issued    // the pair its spending returned, for ReuseGrace
}

// issued is a minted pair in wire terms.
type issued struct {
	apiKey       string
	accessToken  string // OAuth2's form of apiKey: apiKey, or opaque (OpaqueTokens)
	refreshToken string
	endpoint     string
	validUntil   time.Time // zero: never
	refreshUntil time.Time // the refresh token's expiry; zero: never
	family       string
}

// validUntilSeconds is the wire form of validUntil: epoch seconds, 0 = never.
func (p issued) validUntilSeconds() uint64 {
	if p.validUntil.IsZero() {
		return 0
	}
	return uint64(p.validUntil.Unix())
}

// generate starts a new family and mints its first pair.
func (s *Server) generate(lifetime time.Duration) (issued, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fam := &family{id: randomID(9), lifetime: lifetime}
	p, err := s.mintLocked(fam, "")
	if err != nil {
		return issued{}, err
	}
	s.stats.generates.Add(1)
	return p, nil
}

// refresh spends refreshToken. When apiKey is non-nil (the Momento
// protocol), it must be a valid, unexpired key of the token's family.
func (s *Server) refresh(apiKey *string, refreshToken string) (issued, error) {
	s.stats.refreshAttempts.Add(1)
	if f := s.takeFault(); f == FaultUnavailable {
		s.stats.faults.Add(1)
		return issued{}, errInjected
	} else if f == FaultLoseResponse {
		s.stats.faults.Add(1)
		if _, err := s.refreshLocked(apiKey, refreshToken); err != nil {
			return issued{}, err
		}
		return issued{}, errInjected
	}
	return s.refreshLocked(apiKey, refreshToken)
}

func (s *Server) refreshLocked(apiKey *string, refreshToken string) (issued, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reject := func(kind rejectKind, reason string) (issued, error) {
		s.stats.rejected.Add(1)
		return issued{}, &rejection{kind: kind, reason: reason}
	}
	st, ok := s.refreshTokens[refreshToken]
	switch {
	case refreshToken == "":
		return reject(rejectArgument, "missing refresh token")
	case !ok:
		return reject(rejectGrant, "unknown refresh token")
	case st.fam.revoked:
		return reject(rejectGrant, "refresh token's family was revoked after a spent refresh token was reused")
	case st.spent && s.opts.ReuseGrace > 0 && s.opts.Clock().Sub(st.spentAt) < s.opts.ReuseGrace:
		s.stats.graceReuses.Add(1)
		s.opts.Logger.Info("dev: spent refresh token presented again within the reuse grace period; answering with the same pair", "family", st.fam.id)
		return st.answer, nil
	case st.spent:
		s.stats.reuses.Add(1)
		st.fam.revoked = true
		s.stats.familiesRevoked.Add(1)
		s.opts.Logger.Warn("dev: spent refresh token presented again; family revoked", "family", st.fam.id)
		return reject(rejectGrant, "refresh token already spent: every token of its family is now revoked")
	}
	now := s.opts.Clock()
	if !st.validUntil.IsZero() && !now.Before(st.validUntil) {
		return reject(rejectGrant, "refresh token expired")
	}
	if apiKey != nil {
		fam, err := s.verifyKey(*apiKey, now)
		if err != nil {
			return reject(rejectAuth, err.Error())
		}
		if fam != st.fam.id {
			return reject(rejectAuth, "api key and refresh token belong to different token families")
		}
	}
	keep := ""
	if s.opts.NoRotate {
		keep = refreshToken
	}
	p, err := s.mintLocked(st.fam, keep)
	if err != nil {
		return issued{}, err
	}
	if !s.opts.NoRotate {
		st.spent, st.spentAt, st.answer = true, now, p
	}
	s.stats.refreshes.Add(1)
	return p, nil
}

// refreshActive reports whether tok is a refresh token that a refresh
// would accept now, and its expiry.
func (s *Server) refreshActive(tok string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.refreshTokens[tok]
	if !ok || st.spent || st.fam.revoked || (!st.validUntil.IsZero() && !s.opts.Clock().Before(st.validUntil)) {
		return time.Time{}, false
	}
	return st.validUntil, true
}

// mintLocked mints a pair in fam. keepRefresh, when set, is reused as the
// pair's refresh token (NoRotate) instead of a fresh one.
func (s *Server) mintLocked(fam *family, keepRefresh string) (issued, error) {
	now := s.opts.Clock()
	var until time.Time
	claims := jwt.MapClaims{
		"sub": "credhelper-dev",
		"fam": fam.id,
		"jti": randomID(12),
		"iat": now.Unix(),
		"c":   "cache." + s.opts.Endpoint,
		"cp":  "control." + s.opts.Endpoint,
	}
	if fam.lifetime > 0 {
		until = now.Add(fam.lifetime).Truncate(time.Second)
		claims["exp"] = until.Unix()
	}
	jwtStr, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(s.key)
	if err != nil {
		return issued{}, fmt.Errorf("dev: sign token: %w", err)
	}
	v1, err := json.Marshal(map[string]string{"api_key": jwtStr, "endpoint": s.opts.Endpoint})
	if err != nil {
		return issued{}, fmt.Errorf("dev: encode key: %w", err)
	}
	rt := keepRefresh
	refreshUntil := until
	if s.opts.RefreshTTL > 0 {
		refreshUntil = now.Add(s.opts.RefreshTTL).Truncate(time.Second)
	}
	if rt == "" {
		rt = randomToken()
		s.refreshTokens[rt] = &refreshState{fam: fam, validUntil: refreshUntil}
	} else {
		refreshUntil = s.refreshTokens[rt].validUntil
	}
	p := issued{
		apiKey:       base64.StdEncoding.EncodeToString(v1),
		refreshToken: rt,
		endpoint:     s.opts.Endpoint,
		validUntil:   until,
		refreshUntil: refreshUntil,
		family:       fam.id,
	}
	p.accessToken = p.apiKey
	if s.opts.OpaqueTokens {
		p.accessToken = "dev-opaque-" + randomToken()
	}
	return p, nil
}

// verifyKey checks an api key's form, signature and expiry at now and
// returns its family id. Its errors never contain the key.
func (s *Server) verifyKey(apiKey string, now time.Time) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(apiKey)
	if err != nil {
		return "", errors.New("api key is not a v1 key")
	}
	var v1 struct {
		APIKey string `json:"api_key"`
	}
	if json.Unmarshal(raw, &v1) != nil || v1.APIKey == "" {
		return "", errors.New("api key is not a v1 key")
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(v1.APIKey, claims,
		func(*jwt.Token) (any, error) { return s.key.Public(), nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", errors.New("api key expired: a refresh needs the current key to be still valid")
	case err != nil:
		return "", errors.New("api key signature or claims invalid (minted by another server?)")
	}
	fam, _ := claims["fam"].(string)
	if fam == "" {
		return "", errors.New("api key carries no token family")
	}
	return fam, nil
}

func (s *Server) takeFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults) == 0 {
		return 0
	}
	f := s.faults[0]
	s.faults = s.faults[1:]
	return f
}

// FailNextRefreshes makes the next n refreshes, over either protocol, fail
// with fault f.
func (s *Server) FailNextRefreshes(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, f)
	}
}

// sessionOK compares a presented session token in constant time.
func (s *Server) sessionOK(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.SessionToken)) == 1
}

// randomToken returns 32 random bytes, base64url without padding.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newSigningKey returns opts' key or a fresh one.
func newSigningKey(k ed25519.PrivateKey) ed25519.PrivateKey {
	if k != nil {
		return k
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return priv
}

func secondsDuration(n int64) time.Duration { return time.Duration(n) * time.Second }
