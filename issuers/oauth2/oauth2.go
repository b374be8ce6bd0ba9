package oauth2

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	xoauth2 "golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/credhelper/credhelper/provider"
)

// DefaultTimeout bounds one refresh unless Options.Timeout says otherwise.
const DefaultTimeout = 30 * time.Second

// DefaultAssumedLifetime is the lifetime given to an access token whose
// response has no usable expires_in and which carries no exp claim, unless
// Options.DefaultLifetime says otherwise.
const DefaultAssumedLifetime = time.Hour

// AuthStyle says how the client authenticates to the token endpoint.
type AuthStyle string

const (
	// AuthBasic sends client_id and client_secret with HTTP Basic
	// (RFC 6749 section 2.3.1; every server must support it). The default.
	AuthBasic AuthStyle = "basic"
	// AuthPost sends them in the form body.
	AuthPost AuthStyle = "post"
	// AuthAuto tries Basic and, only if the server answers invalid_client,
	// the form body, then remembers what worked. The retry happens only on
	// a client-authentication failure, so a refresh token is never
	// presented twice because of it.
	AuthAuto AuthStyle = "auto"
)

// Options configure an Issuer.
type Options struct {
	// ClientID and ClientSecret authenticate the client. A public client
	// leaves ClientSecret empty.
	ClientID, ClientSecret string
	// ClientSecretSource, when set, supplies the client secret at each
	// request instead of ClientSecret: a secret file that is rotated is
	// read afresh, and one that is missing fails only the requests that
	// need it (an error from it is reported as not delivered, nothing
	// having been sent), so reading the stored pair never needs it.
	ClientSecretSource func(ctx context.Context) (string, error)
	// AuthStyle is how they are sent; default AuthBasic.
	AuthStyle AuthStyle
	// Scopes, when set, are sent as the refresh request's scope.
	Scopes []string
	// ExtraParams are added to every refresh request's form (for example
	// an audience or resource parameter). They may not replace grant_type,
	// refresh_token or scope.
	ExtraParams url.Values
	// HTTPClient makes the requests; default a client with
	// http.DefaultTransport's settings.
	HTTPClient *http.Client
	// Timeout bounds each refresh; default DefaultTimeout.
	Timeout time.Duration
	// DefaultLifetime is the lifetime of an access token whose response
	// has no usable expires_in (absent or 0) and which carries no exp
	// claim; default DefaultAssumedLifetime. An unknown lifetime is never
	// taken for "never expires". The first such response is logged at
	// warn level.
	DefaultLifetime time.Duration
	// IntrospectionURL, when set, is the server's RFC 7662 token
	// introspection endpoint (https, or http on a loopback host). The
	// refresh engine then asks it, before taking over an expired claim,
	// whether the refresh token is still active, instead of presenting a
	// token the previous holder may have spent.
	IntrospectionURL string
	// Clock returns now, to turn expires_in into a time; default time.Now.
	Clock func() time.Time
	// Logger receives debug lines, never a token; default silent.
	Logger *slog.Logger
}

// Issuer refreshes OAuth2 tokens at one token endpoint. It implements
// provider.Issuer; it does not mint first pairs (OAuth2 first pairs come
// from an interactive authorization flow), so store the first pair with
// credhelper put.
type Issuer struct {
	tokenURL string
	opts     Options
	// postWorks records that AuthAuto fell back to the form body.
	postWorks atomic.Bool
	// warnedLifetime records that a response without a lifetime was logged.
	warnedLifetime atomic.Bool
	// lastSecret is the client secret most recently used, for redaction.
	lastSecret atomic.Pointer[string]
}

var (
	_ provider.Issuer              = (*Issuer)(nil)
	_ provider.RefreshPolicyIssuer = (*Issuer)(nil)
	_ provider.Introspector        = (*Issuer)(nil)
)

// RefreshPolicy reports OAuth2's: the refresh token alone authorizes a
// refresh, also after the access token expired (RFC 6749 section 6), and a
// server that detects reuse of a rotated refresh token revokes the
// family's access tokens too (RFC 9700 section 4.14.2).
func (i *Issuer) RefreshPolicy() provider.RefreshPolicy {
	return provider.RefreshPolicy{RefreshAfterExpiry: true, RejectionRevokesAuthToken: true}
}

// New returns an Issuer for the token endpoint tokenURL, which must be
// https, or http on a loopback host.
func New(tokenURL string, optFns ...func(*Options)) (*Issuer, error) {
	o := Options{AuthStyle: AuthBasic, Timeout: DefaultTimeout, DefaultLifetime: DefaultAssumedLifetime, Clock: time.Now, Logger: slog.New(slog.DiscardHandler)}
	for _, fn := range optFns {
		fn(&o)
	}
	if err := checkURL("token URL", tokenURL); err != nil {
		return nil, err
	}
	if o.IntrospectionURL != "" {
		if err := checkURL("introspection URL", o.IntrospectionURL); err != nil {
			return nil, err
		}
	}
	switch {
	case o.ClientID == "":
		return nil, errors.New("oauth2: ClientID is required")
	case o.AuthStyle != AuthBasic && o.AuthStyle != AuthPost && o.AuthStyle != AuthAuto:
		return nil, fmt.Errorf("oauth2: AuthStyle %q is not basic, post or auto", o.AuthStyle)
	case o.Timeout <= 0:
		return nil, fmt.Errorf("oauth2: Timeout %v must be positive", o.Timeout)
	case o.DefaultLifetime < time.Second:
		return nil, fmt.Errorf("oauth2: DefaultLifetime %v must be at least 1s", o.DefaultLifetime)
	case o.Clock == nil || o.Logger == nil:
		return nil, errors.New("oauth2: Clock and Logger must not be nil: leave them unset for the defaults")
	}
	for _, k := range []string{"grant_type", "refresh_token", "scope", "client_id", "client_secret"} {
		if o.ExtraParams.Has(k) {
			return nil, fmt.Errorf("oauth2: ExtraParams may not set %q", k)
		}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &Issuer{tokenURL: tokenURL, opts: o}, nil
}

// checkURL accepts an absolute https URL, or http to a loopback host, with
// no credentials in it.
func checkURL(what, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("oauth2: %s %q is not an absolute http(s) URL: use e.g. https://login.example.com/oauth2/token", what, raw)
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return fmt.Errorf("oauth2: %s %q is plain http to a non-loopback host: use https", what, raw)
	case u.User != nil:
		return fmt.Errorf("oauth2: the %s must not carry credentials: set ClientID and ClientSecret", what)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Refresh spends pair.RefreshToken with the refresh grant.
//
// Unlike Momento, OAuth2 refresh tokens commonly outlive access tokens, so
// a pair whose access token has expired is still sent: the server decides.
func (i *Issuer) Refresh(ctx context.Context, pair provider.Pair) (provider.Pair, error) {
	if pair.RefreshToken == "" {
		return provider.Pair{}, fmt.Errorf("oauth2: refresh not sent: the pair has no refresh token: %w: %w", provider.ErrInvalidRecord, provider.ErrNotDelivered)
	}
	ctx, cancel := context.WithTimeout(ctx, i.opts.Timeout)
	defer cancel()

	style := i.opts.AuthStyle
	if style == AuthAuto {
		style = AuthBasic
		if i.postWorks.Load() {
			style = AuthPost
		}
	}
	tok, err := i.exchange(ctx, pair.RefreshToken, style)
	if i.opts.AuthStyle == AuthAuto && style == AuthBasic && isInvalidClient(err) {
		i.opts.Logger.Debug("oauth2: basic client authentication refused; trying the form body")
		if tok, err = i.exchange(ctx, pair.RefreshToken, AuthPost); err == nil {
			i.postWorks.Store(true)
		}
	}
	if err != nil {
		i.opts.Logger.Debug("oauth2: refresh failed", "error", err)
		return provider.Pair{}, err
	}
	return i.toPair(tok, pair)
}

// exchange performs one refresh request. The refresh grant is sent through
// clientcredentials.Config, whose EndpointParams may replace grant_type
// (x/oauth2 allows it for interoperability): unlike oauth2.Config's
// TokenSource, it sends scopes and extra parameters and a fixed AuthStyle.
func (i *Issuer) exchange(ctx context.Context, refreshToken string, style AuthStyle) (*xoauth2.Token, error) {
	params := url.Values{}
	for k, v := range i.opts.ExtraParams {
		params[k] = append([]string(nil), v...)
	}
	params.Set("grant_type", "refresh_token")
	params.Set("refresh_token", refreshToken)
	secret, err := i.secret(ctx)
	if err != nil {
		return nil, err
	}
	cc := clientcredentials.Config{
		ClientID:       i.opts.ClientID,
		ClientSecret:   secret,
		TokenURL:       i.tokenURL,
		Scopes:         i.opts.Scopes,
		EndpointParams: params,
		AuthStyle:      xoauth2.AuthStyleInHeader,
	}
	if style == AuthPost {
		cc.AuthStyle = xoauth2.AuthStyleInParams
	}
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})
	ctx = context.WithValue(ctx, xoauth2.HTTPClient, i.opts.HTTPClient)
	tok, err := cc.Token(ctx)
	if err != nil {
		return nil, i.classify(ctx, err, wrote.Load(), refreshToken)
	}
	return tok, nil
}

// sentError is a failure after the request was sent: its message, already
// cleaned of secrets, and the context's error, if that is why, to match
// with errors.Is.
type sentError struct {
	msg   string
	cause error
}

func (e *sentError) Error() string { return e.msg }
func (e *sentError) Unwrap() error { return e.cause }

// classify maps a token request's failure to credhelper's error kinds.
// sent reports whether the request's headers were written.
func (i *Issuer) classify(ctx context.Context, err error, sent bool, secrets ...string) error {
	secrets = append(secrets, i.clientSecrets()...)
	var re *xoauth2.RetrieveError
	if !errors.As(err, &re) {
		msg := provider.SanitizeMessage(err.Error(), maxServerMessage, secrets...)
		if !sent {
			return provider.Transient(fmt.Errorf("oauth2: refresh not sent to %s: %s: %w", i.tokenURL, msg, provider.ErrNotDelivered))
		}
		return provider.Transient(&sentError{
			msg:   fmt.Sprintf("oauth2: refresh at %s failed after the request was sent, so it may have been processed: %s", i.tokenURL, msg),
			cause: ctx.Err(), // already in msg when it is why: not said twice
		})
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	desc := provider.SanitizeMessage(re.ErrorDescription, maxServerMessage, secrets...)
	what := fmt.Sprintf("HTTP %d %s", status, re.ErrorCode)
	if desc != "" {
		what += ": " + desc
	}
	// Any error response other than invalid_grant (RFC 6749 section 5.2)
	// means the grant was refused before it was carried out: the refresh
	// token is unspent, so it is reported as not delivered and the claim
	// released, never presented again "in case".
	switch {
	case re.ErrorCode == "invalid_grant":
		return fmt.Errorf("oauth2: refresh token rejected by %s (%s): %w", i.tokenURL, what, provider.ErrRefreshRejected)
	case re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client":
		return &clientError{err: fmt.Errorf("oauth2: client authentication refused by %s (%s); the refresh token is unspent: check ClientID, ClientSecret and AuthStyle: %w: %w", i.tokenURL, what, provider.ErrPermission, provider.ErrNotDelivered)}
	case status >= 500 || status == http.StatusTooManyRequests || re.ErrorCode == "temporarily_unavailable" || re.ErrorCode == "server_error":
		return provider.Transient(fmt.Errorf("oauth2: refresh at %s failed after the request was sent, so it may have been processed (%s)", i.tokenURL, what))
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("oauth2: refresh refused by %s (%s); the refresh token is unspent: %w: %w", i.tokenURL, what, provider.ErrPermission, provider.ErrNotDelivered)
	case re.ErrorCode != "":
		return fmt.Errorf("oauth2: refresh refused by %s (%s); the refresh token is unspent: %w", i.tokenURL, what, provider.ErrNotDelivered)
	default:
		return fmt.Errorf("oauth2: refresh refused by %s (%s)", i.tokenURL, what)
	}
}

// clientSecrets lists the forms in which the client secret can travel and
// so come back in a server's error text: as it is, form-encoded, and
// inside HTTP Basic credentials.
func (i *Issuer) clientSecrets() []string {
	sec := i.opts.ClientSecret
	if p := i.lastSecret.Load(); p != nil {
		sec = *p
	}
	if sec == "" {
		return nil
	}
	id := i.opts.ClientID
	return []string{
		sec,
		url.QueryEscape(sec),
		base64.StdEncoding.EncodeToString([]byte(id + ":" + sec)),
		base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(sec))),
	}
}

// secret returns the client secret for one request.
func (i *Issuer) secret(ctx context.Context) (string, error) {
	if i.opts.ClientSecretSource == nil {
		return i.opts.ClientSecret, nil
	}
	s, err := i.opts.ClientSecretSource(ctx)
	if err != nil {
		return "", fmt.Errorf("oauth2: request to %s not sent: the client secret is unavailable: %w: %w", i.tokenURL, err, provider.ErrNotDelivered)
	}
	i.lastSecret.Store(&s)
	return s, nil
}

// clientError marks a client-authentication failure (for AuthAuto).
type clientError struct{ err error }

func (e *clientError) Error() string { return e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

func isInvalidClient(err error) bool {
	var ce *clientError
	return errors.As(err, &ce)
}

// toPair builds the new pair from a token response.
func (i *Issuer) toPair(tok *xoauth2.Token, prev provider.Pair) (provider.Pair, error) {
	now := i.opts.Clock()
	p := provider.Pair{AuthToken: tok.AccessToken, RefreshToken: prev.RefreshToken, Endpoint: prev.Endpoint, IssuedAt: now.Truncate(time.Second)}
	// x/oauth2 fills an absent refresh_token in with the presented one, so
	// look at the raw response to tell rotation from none.
	if rt, _ := tok.Extra("refresh_token").(string); rt != "" {
		p.RefreshToken = rt
	} else {
		i.opts.Logger.Debug("oauth2: the server did not rotate the refresh token; keeping it")
		p.RefreshValidUntil = prev.RefreshValidUntil
	}
	// RFC 6749 has no field for the refresh token's lifetime; these are
	// the vendor extensions in use (GitHub, Keycloak).
	for _, name := range []string{"refresh_token_expires_in", "refresh_expires_in"} {
		if secs, ok := positiveSeconds(tok.Extra(name)); ok {
			p.RefreshValidUntil = now.Add(time.Duration(secs) * time.Second).Truncate(time.Second)
			break
		}
	}
	info, infoErr := provider.ParseAuthToken(tok.AccessToken)
	if infoErr == nil && info.Endpoint != "" {
		p.Endpoint = info.Endpoint
	}
	// A lifetime that is absent, zero, negative or already over is
	// unknown, never "never expires" and never "expired on arrival".
	switch {
	case tok.ExpiresIn > 0:
		p.ValidUntil = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	case tok.ExpiresIn == 0 && tok.Expiry.After(now):
		p.ValidUntil = tok.Expiry
	case tok.ExpiresIn == 0 && infoErr == nil && info.Expires.After(now):
		p.ValidUntil = info.Expires
	default:
		p.ValidUntil = now.Add(i.opts.DefaultLifetime)
		if !i.warnedLifetime.Swap(true) {
			i.opts.Logger.Warn("oauth2: the token response has no expires_in and the access token no exp claim; assuming the default lifetime",
				slog.String("token_url", i.tokenURL), slog.Duration("default_lifetime", i.opts.DefaultLifetime))
		}
	}
	p.ValidUntil = p.ValidUntil.Truncate(time.Second)
	if err := p.Validate(); err != nil {
		return provider.Pair{}, fmt.Errorf("oauth2: %s returned an unusable token: %w", i.tokenURL, err)
	}
	return p, nil
}

// positiveSeconds reads a JSON number (or numeric string) of seconds from
// a token response's extra field.
func positiveSeconds(v any) (int64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case string:
		n, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, false
		}
		f = n
	default:
		return 0, false
	}
	if f < 1 || f > 1<<40 {
		return 0, false
	}
	return int64(f), true
}

// RefreshTokenActive asks the introspection endpoint (RFC 7662) whether
// pair's refresh token is still active, authenticating as the client. It
// returns an error wrapping provider.ErrUnsupported when no
// IntrospectionURL is set.
func (i *Issuer) RefreshTokenActive(ctx context.Context, pair provider.Pair) (bool, error) {
	if i.opts.IntrospectionURL == "" {
		return false, fmt.Errorf("oauth2: no introspection endpoint configured: %w", provider.ErrUnsupported)
	}
	ctx, cancel := context.WithTimeout(ctx, i.opts.Timeout)
	defer cancel()
	form := url.Values{"token": {pair.RefreshToken}, "token_type_hint": {"refresh_token"}}
	style := i.opts.AuthStyle
	if style == AuthAuto && i.postWorks.Load() {
		style = AuthPost
	}
	secret, err := i.secret(ctx)
	if err != nil {
		return false, err
	}
	if style == AuthPost {
		form.Set("client_id", i.opts.ClientID)
		if secret != "" {
			form.Set("client_secret", secret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.opts.IntrospectionURL, strings.NewReader(form.Encode()))
	if err != nil {
		return false, fmt.Errorf("oauth2: introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if style != AuthPost {
		req.SetBasicAuth(url.QueryEscape(i.opts.ClientID), url.QueryEscape(secret))
	}
	resp, err := i.opts.HTTPClient.Do(req)
	if err != nil {
		return false, provider.Transient(fmt.Errorf("oauth2: introspection at %s: %s", i.opts.IntrospectionURL,
			provider.SanitizeMessage(err.Error(), maxServerMessage, append(i.clientSecrets(), pair.RefreshToken)...)))
	}
	defer resp.Body.Close()
	var body struct {
		Active *bool `json:"active"`
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("oauth2: introspection at %s answered HTTP %d", i.opts.IntrospectionURL, resp.StatusCode)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			err = provider.Transient(err)
		}
		return false, err
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil || body.Active == nil {
		return false, fmt.Errorf("oauth2: introspection at %s answered without a boolean \"active\"", i.opts.IntrospectionURL)
	}
	return *body.Active, nil
}

// maxServerMessage bounds server-supplied text quoted in an error.
const maxServerMessage = 300
