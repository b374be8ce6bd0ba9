package vault

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/credhelper/credhelper/provider"
)

func TestClassify(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/v1/kv/data/x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name              string
		err               error
		transient         bool
		sentinel          error
		mentions          string
		responseErrorKept bool
	}{
		{"forbidden", &api.ResponseError{StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}}, false, provider.ErrPermission, `path "kv/data/x" { capabilities = ["update"] }`, true},
		{"sealed", &api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}}, true, nil, "sealed", true},
		{"throttled", &api.ResponseError{StatusCode: 429, Errors: []string{"request path kv/: rate limit quota exceeded"}}, true, nil, "rate limited", true},
		{"server error", &api.ResponseError{StatusCode: 500, Errors: []string{"internal error"}}, true, nil, "500", true},
		{"standby inconsistency", &api.ResponseError{StatusCode: 412}, true, nil, "412", true},
		{"bad request", &api.ResponseError{StatusCode: 400, Errors: []string{"no data provided"}}, false, nil, "no data provided", true},
		{"raw error body is not echoed", &api.ResponseError{StatusCode: 400, RawError: true, Errors: []string{"<html>secret-ish</html>"}}, false, nil, "(400)", true},
		{"connection refused", fmt.Errorf("giving up after 1 attempt(s): %w", refused), true, nil, "cannot reach Vault", false},
		{"untrusted certificate", &url.Error{Op: "Get", URL: "https://vault:8200", Err: x509.UnknownAuthorityError{}}, false, nil, "VAULT_CACERT", false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true, nil, "timed out", false},
		{"canceled", context.Canceled, false, context.Canceled, "canceled", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err, "write", "kv/data/x", "update")
			if provider.IsTransient(got) != tt.transient {
				t.Errorf("IsTransient = %v, want %v (%v)", !tt.transient, tt.transient, got)
			}
			if tt.sentinel != nil && !errors.Is(got, tt.sentinel) {
				t.Errorf("got %v, want it to wrap %v", got, tt.sentinel)
			}
			if !strings.Contains(got.Error(), tt.mentions) {
				t.Errorf("message %q does not mention %q", got, tt.mentions)
			}
			if strings.Contains(got.Error(), "\n") || !strings.HasPrefix(got.Error(), "vault: ") {
				t.Errorf("message %q is not one line with the package prefix", got)
			}
			if strings.Contains(got.Error(), "secret-ish") {
				t.Errorf("raw response body echoed: %q", got)
			}
			var re *api.ResponseError
			if errors.As(got, &re) != tt.responseErrorKept {
				t.Errorf("errors.As(*api.ResponseError) = %v, want %v", !tt.responseErrorKept, tt.responseErrorKept)
			}
		})
	}
}

func TestIsCASMismatch(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&api.ResponseError{StatusCode: 400, Errors: []string{casMismatch}}, true},
		{fmt.Errorf("wrapped: %w", &api.ResponseError{StatusCode: 400, Errors: []string{"other", casMismatch}}), true},
		{&api.ResponseError{StatusCode: 400, Errors: []string{"check-and-set parameter required for this call"}}, false},
		{&api.ResponseError{StatusCode: 500, Errors: []string{casMismatch}}, false},
		{&api.ResponseError{StatusCode: 400, RawError: true, Errors: []string{"garbage " + casMismatch}}, false},
		{errors.New(casMismatch), false},
	}
	for i, tt := range tests {
		if got := isCASMismatch(tt.err); got != tt.want {
			t.Errorf("case %d: isCASMismatch(%v) = %v, want %v", i, tt.err, got, tt.want)
		}
	}
}

func TestDataRoundTrip(t *testing.T) {
	in := []byte(`{"apiKey":"a","lease":{"expires":4102444000,"generation":3,"holder":"h"},"refreshToken":"r","validUntil":4102444800,"x":1.5}`)
	data, err := toData(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := fromData(data)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(in) {
		t.Fatalf("round trip changed the record:\n got %s\nwant %s", out, in)
	}
	for _, bad := range []string{"", "null", "[1]", `"s"`, "{}", `{"a":1} {"b":2}`, "\xff{}"} {
		if _, err := toData([]byte(bad)); !errors.Is(err, provider.ErrInvalidRecord) {
			t.Errorf("toData(%q): err = %v, want ErrInvalidRecord", bad, err)
		}
	}
}

func TestVersions(t *testing.T) {
	for _, v := range []provider.Version{"1", "42", "18446744073709551615"} {
		if n, ok := parseVersion(v); !ok || formatVersion(n) != v {
			t.Errorf("parseVersion(%q) = %d, %v", v, n, ok)
		}
	}
	for _, v := range []provider.Version{"", "0", "01", "-1", "1.0", "abc", " 1"} {
		if _, ok := parseVersion(v); ok {
			t.Errorf("parseVersion(%q) accepted a non-version", v)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"empty", Options{}, true},
		{"token", Options{Token: "t", Address: "https://vault:8200"}, true},
		{"bad address", Options{Address: "vault:8200"}, false},
		{"token and file", Options{Token: "t", TokenFile: "f"}, false},
		{"approle", Options{AppRole: AppRole{RoleID: "r", SecretID: "s"}}, true},
		{"approle file", Options{AppRole: AppRole{RoleID: "r", SecretIDFile: "f", MountPath: "team/approle"}}, true},
		{"approle without secret", Options{AppRole: AppRole{RoleID: "r"}}, false},
		{"approle both secrets", Options{AppRole: AppRole{RoleID: "r", SecretID: "s", SecretIDFile: "f"}}, false},
		{"approle and token", Options{Token: "t", AppRole: AppRole{RoleID: "r", SecretID: "s"}}, false},
		{"secret without role", Options{AppRole: AppRole{SecretID: "s"}}, false},
		{"mount with slashes", Options{AppRole: AppRole{RoleID: "r", SecretID: "s", MountPath: "/approle/"}}, false},
	}
	for _, tt := range tests {
		err := tt.o.validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && (strings.Contains(err.Error(), `"s"`) || !strings.HasPrefix(err.Error(), "vault: ")) {
			t.Errorf("%s: message %q leaks a value or lacks the prefix", tt.name, err)
		}
	}
}

func TestSplitKey(t *testing.T) {
	for _, k := range []string{"secret/x", "team/kv/prod/momento", "a/b-c_d.e"} {
		if err := splitKey(k); err != nil {
			t.Errorf("splitKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", "x", "/x", "x/", "a//b", "a/./b", "a/../b", "a/b?c", "a/b#c", "a/b\x00"} {
		if err := splitKey(k); err == nil {
			t.Errorf("splitKey(%q) accepted a malformed key", k)
		}
	}
}
