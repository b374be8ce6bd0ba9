package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/credhelper/credhelper/provider"
)

// casMismatch is the message KV v2 answers a write whose options.cas is not
// the secret's current version with (vault-plugin-secrets-kv,
// validateCheckAndSetOption; quoted in Vault's KV v2 API documentation).
const casMismatch = "check-and-set parameter did not match the current version"

// isCASMismatch reports whether err is KV v2 refusing a write because
// options.cas was not the current version.
//
// Vault's HTTP API has no machine-readable error codes: an *api.ResponseError
// carries only the HTTP status and the server's message strings, and KV v2
// answers every rejected write (no data, malformed options, cas mismatch)
// with 400. So the status is checked first and then one of the Errors is
// compared, whole, with the documented message; nothing is matched inside
// the free-form Error() text. Because a message can change between
// releases, CompareAndSwap does not rely on this alone: any other 400 is
// settled by reading the current version (see Backend.write).
func isCASMismatch(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	for _, msg := range re.Errors {
		if strings.TrimSpace(msg) == casMismatch {
			return true
		}
	}
	return false
}

// statusOf returns the HTTP status of a Vault response error, or 0.
func statusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// classify turns an error from the Vault API into a typed, one-line error.
// op describes what was attempted ("read", "write", ...), path is the Vault
// API path and capability the ACL capability that path needs, so a
// permission error can say which policy rule is missing.
func classify(err error, op, path, capability string) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.Canceled):
		return provider.NewError(fmt.Sprintf("vault: %s %q: %v", op, path, context.Canceled), err)
	case errors.Is(err, context.DeadlineExceeded):
		return provider.Transient(provider.NewError(fmt.Sprintf("vault: %s %q: timed out: retry, or allow more time", op, path), err))
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		detail := summary(re)
		switch code := re.StatusCode; {
		case code == http.StatusForbidden:
			return provider.NewError(fmt.Sprintf("vault: permission denied to %s %q: the token's policy needs path %q { capabilities = [%q] } (or the token expired: log in again)", op, path, path, capability), err, provider.KindPermission)
		case code == http.StatusServiceUnavailable:
			return provider.Transient(provider.NewError(fmt.Sprintf("vault: %s %q: Vault is sealed or not ready (503%s): unseal it or wait for a leader", op, path, detail), err))
		case code == http.StatusTooManyRequests:
			return provider.Transient(provider.NewError(fmt.Sprintf("vault: %s %q: rate limited (429%s): retry later", op, path, detail), err))
		case code == http.StatusPreconditionFailed || code == http.StatusRequestTimeout || code >= 500:
			return provider.Transient(provider.NewError(fmt.Sprintf("vault: %s %q: server error (%d%s): retry later", op, path, code, detail), err))
		default:
			return provider.NewError(fmt.Sprintf("vault: %s %q: Vault refused the request (%d%s)", op, path, code, detail), err)
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if isTLSTrustError(err) {
			return provider.NewError(fmt.Sprintf("vault: %s %q: Vault's TLS certificate is not trusted: set VAULT_CACERT to its CA bundle", op, path), err)
		}
		return provider.Transient(provider.NewError(fmt.Sprintf("vault: %s %q: cannot reach Vault: %s: check VAULT_ADDR and that Vault is running", op, path, oneLine(ue.Err.Error())), err))
	}
	return provider.NewError(fmt.Sprintf("vault: %s %q: %s", op, path, oneLine(err.Error())), err)
}

func isTLSTrustError(err error) bool {
	var (
		ua x509.UnknownAuthorityError
		ci x509.CertificateInvalidError
		he x509.HostnameError
		cv *tls.CertificateVerificationError
	)
	return errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &he) || errors.As(err, &cv)
}

// summary renders Vault's error messages as ": a; b" on one line, or "".
func summary(re *api.ResponseError) string {
	if re.RawError || len(re.Errors) == 0 {
		return ""
	}
	return ": " + oneLine(strings.Join(re.Errors, "; "))
}

// oneLine collapses runs of white space, newlines included, into one space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
