package config

import (
	"fmt"
	"strings"
)

// Scheme sets accepted by ParseSpec.
var (
	BackendSchemes = []string{"file", "env", "awssm", "vault", "plugin"}
	IssuerSchemes  = []string{"dev", "momento", "oauth2", "plugin"}
)

// Spec is a parsed SCHEME:REST setting such as "file:/path" or
// "dev:127.0.0.1:7777".
type Spec struct {
	Scheme string
	// Rest is everything after the first colon.
	Rest string
}

func (s Spec) String() string { return s.Scheme + ":" + s.Rest }

// ParseSpec splits s at its first colon and checks the scheme against
// schemes. "momento" alone is accepted (its address is derived from the
// key).
func ParseSpec(s string, schemes []string) (Spec, error) {
	scheme, rest, found := strings.Cut(s, ":")
	known := false
	for _, k := range schemes {
		known = known || k == scheme
	}
	if !known {
		return Spec{}, fmt.Errorf("unknown scheme %q in %q: use one of %s followed by a colon", scheme, s, strings.Join(schemes, ":, ")+":")
	}
	if (!found || rest == "") && scheme != "momento" {
		return Spec{}, fmt.Errorf("%q needs a value after \"%s:\"", s, scheme)
	}
	if scheme == "plugin" {
		name, key, ok := strings.Cut(rest, ":")
		if !ok || name == "" || key == "" {
			return Spec{}, fmt.Errorf("%q must be plugin:NAME:KEY", s)
		}
	}
	return Spec{Scheme: scheme, Rest: rest}, nil
}
