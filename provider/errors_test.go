package provider_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/credhelper/credhelper/provider"
)

func TestTransientNil(t *testing.T) {
	if err := provider.Transient(nil); err != nil {
		t.Errorf("Transient(nil) = %#v, want nil", err)
	}
	if provider.IsTransient(nil) {
		t.Error("IsTransient(nil) = true, want false")
	}
}

func TestIsTransient(t *testing.T) {
	cause := errors.New("awssm: throttled")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"plain", cause, false},
		{"sentinel", provider.ErrConflict, false},
		{"context deadline", context.DeadlineExceeded, false},
		{"direct", provider.Transient(cause), true},
		{"literal", &provider.TransientError{Err: cause}, true},
		{"wrapped once", fmt.Errorf("load: %w", provider.Transient(cause)), true},
		{"wrapped three times", fmt.Errorf("a: %w", fmt.Errorf("b: %w", fmt.Errorf("c: %w", provider.Transient(cause)))), true},
		{"joined", errors.Join(errors.New("other"), provider.Transient(cause)), true},
		{"multi-%w", fmt.Errorf("%w and %w", provider.ErrConflict, provider.Transient(cause)), true},
		{"transient of transient", provider.Transient(provider.Transient(cause)), true},
		{"formatted with %v loses the mark", fmt.Errorf("load: %v", provider.Transient(cause)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := provider.IsTransient(tt.err); got != tt.want {
				t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestTransientKeepsCause(t *testing.T) {
	cause := fmt.Errorf("vault: 503: %w", provider.ErrNotFound)
	err := provider.Transient(cause)
	if got, want := err.Error(), cause.Error(); got != want {
		t.Errorf("Transient(cause).Error() = %q, want the cause's text %q", got, want)
	}
	if !errors.Is(err, provider.ErrNotFound) {
		t.Error("errors.Is(Transient(cause), ErrNotFound) = false, want true")
	}
	var te *provider.TransientError
	if !errors.As(fmt.Errorf("x: %w", err), &te) || te.Err != cause {
		t.Errorf("errors.As found %#v, want a TransientError holding the cause", te)
	}
	if errors.Unwrap(err) != cause {
		t.Errorf("Unwrap = %v, want the cause", errors.Unwrap(err))
	}
}

func TestNotDeliveredInsideTransient(t *testing.T) {
	dial := errors.New("dial tcp 127.0.0.1:1: connection refused")
	tests := []struct {
		name string
		err  error
	}{
		{"wrapped cause", provider.Transient(fmt.Errorf("momento: %w: %w", provider.ErrNotDelivered, dial))},
		{"joined cause", provider.Transient(errors.Join(provider.ErrNotDelivered, dial))},
		{"outer wrap", fmt.Errorf("refresh: %w", provider.Transient(fmt.Errorf("oauth2: %w", provider.ErrNotDelivered)))},
		{"sentinel itself", provider.Transient(provider.ErrNotDelivered)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, provider.ErrNotDelivered) {
				t.Errorf("errors.Is(%v, ErrNotDelivered) = false, want true", tt.err)
			}
			if !provider.IsTransient(tt.err) {
				t.Errorf("IsTransient(%v) = false, want true", tt.err)
			}
			if errors.Is(tt.err, provider.ErrRefreshRejected) {
				t.Errorf("errors.Is(%v, ErrRefreshRejected) = true, want false", tt.err)
			}
		})
	}
	// Not delivered without the transient mark is still detectable, but
	// is not transient.
	plain := fmt.Errorf("x: %w", provider.ErrNotDelivered)
	if provider.IsTransient(plain) {
		t.Error("IsTransient(ErrNotDelivered without Transient) = true, want false")
	}
}

func TestSentinelsDistinct(t *testing.T) {
	// A sentinel may refine one other, listed here: it is that one too
	// (its kind comes first in kinds.go, the more telling).
	refines := map[string]string{"ErrNoIssuer": "ErrUnsupported"}
	for name, err := range sentinels {
		msg := err.Error()
		if msg == "" || msg != strings.ToLower(msg) || strings.ContainsAny(msg, "\n.") {
			t.Errorf("%s text %q: want a non-empty lowercase phrase", name, msg)
		}
		for other, oerr := range sentinels {
			if other != name && errors.Is(err, oerr) && refines[name] != other {
				t.Errorf("errors.Is(%s, %s) = true, want false", name, other)
			}
		}
	}
}

func TestEndpointMismatchError(t *testing.T) {
	err := error(&provider.EndpointMismatchError{Want: "cell-2.example.com", Have: "cell-1.example.com"})
	msg := err.Error()
	for _, w := range []string{"provider: ", `"cell-1.example.com"`, `"cell-2.example.com"`} {
		if !strings.Contains(msg, w) {
			t.Errorf("Error() = %q, want it to contain %q", msg, w)
		}
	}
	var mm *provider.EndpointMismatchError
	if !errors.As(fmt.Errorf("get: %w", err), &mm) || mm.Want != "cell-2.example.com" {
		t.Errorf("errors.As through a wrap = %v, want the mismatch", mm)
	}
}

func TestSanitizeMessage(t *testing.T) {
	tests := []struct {
		in      string
		limit   int
		secrets []string
		want    string
	}{
		{"token SECRET-1 refused", 0, []string{"SECRET-1"}, "token [redacted] refused"},
		{"line one\nline two\r\x00", 0, nil, "line one line two  "},
		{"bad \xff utf8", 0, nil, "bad ? utf8"},
		{"abcdefghij", 8, nil, "abcde..."},
		{"ééééé", 7, nil, "éé..."},
		{"x", 0, []string{""}, "x"},
	}
	for _, tt := range tests {
		if got := provider.SanitizeMessage(tt.in, tt.limit, tt.secrets...); got != tt.want {
			t.Errorf("SanitizeMessage(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
		}
	}
}

func TestCleanSecret(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"s3cr3t", "s3cr3t", true},
		{"s3cr3t\n", "s3cr3t", true},
		{"s3cr3t\r\n", "s3cr3t", true},
		{"s3cr3t\n\n", "", false},
		{"s3c\tr3t", "", false},
		{"s3cr3t\x7f", "", false},
		{"s3cr3t\u0085", "", false},
		{"\n", "", false},
		{"", "", false},
		{"s3cr3t\xff", "", false},
	} {
		got, err := provider.CleanSecret(tc.in, "$VAR")
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("CleanSecret(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "$VAR") || strings.Contains(err.Error(), "s3c")) {
			t.Errorf("CleanSecret(%q) error %q must name $VAR and not the value", tc.in, err)
		}
	}
}
