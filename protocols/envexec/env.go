package envexec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/credhelper/credhelper/provider"
)

// Default variable names.
const (
	DefaultTokenVar    = "MOMENTO_API_KEY"
	DefaultEndpointVar = "MOMENTO_ENDPOINT"
)

// Vars names the environment variables that carry a credential. An empty
// name leaves that variable out, except Token, which is required.
type Vars struct {
	Token    string
	Endpoint string
	Expiry   string
}

// DefaultVars returns MOMENTO_API_KEY and MOMENTO_ENDPOINT, without an
// expiry variable.
func DefaultVars() Vars {
	return Vars{Token: DefaultTokenVar, Endpoint: DefaultEndpointVar}
}

var validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks that every name is a portable variable name and that no
// two are the same.
func (v Vars) Validate() error {
	if v.Token == "" {
		return errors.New("envexec: the token variable name is empty: set env.token_var or leave it unset for " + DefaultTokenVar)
	}
	seen := map[string]bool{}
	for _, n := range []string{v.Token, v.Endpoint, v.Expiry} {
		if n == "" {
			continue
		}
		if !validName.MatchString(n) {
			return fmt.Errorf("envexec: %q is not a variable name: use letters, digits and _, not starting with a digit", n)
		}
		if seen[n] {
			return fmt.Errorf("envexec: variable %s is named twice", n)
		}
		seen[n] = true
	}
	return nil
}

// Var is one variable.
type Var struct {
	Name, Value string
}

// Values returns the variables for p in the order token, endpoint, expiry.
func (v Vars) Values(p provider.Pair) ([]Var, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	if p.AuthToken == "" {
		return nil, errors.New("envexec: the credential has an empty auth token: store a pair with 'credhelper put'")
	}
	if strings.ContainsRune(p.AuthToken, 0) {
		return nil, errors.New("envexec: the auth token contains NUL and cannot be put in the environment")
	}
	out := []Var{{v.Token, p.AuthToken}}
	if v.Endpoint != "" {
		if ep, err := p.ResolveEndpoint(); err == nil && !strings.ContainsRune(ep, 0) {
			out = append(out, Var{v.Endpoint, ep})
		}
	}
	if v.Expiry != "" {
		exp := "0"
		if !p.Never() {
			exp = strconv.FormatInt(p.ValidUntil.Unix(), 10)
		}
		out = append(out, Var{v.Expiry, exp})
	}
	return out, nil
}

// Format is an output format of Write.
type Format string

// Formats Write knows.
const (
	FormatShell  Format = "sh"
	FormatDotenv Format = "dotenv"
	FormatJSON   Format = "json"
)

// Write prints vars in format f. Nothing is written if a value cannot be
// represented.
func Write(w io.Writer, f Format, vars []Var) error {
	var b strings.Builder
	switch f {
	case FormatShell:
		for _, v := range vars {
			fmt.Fprintf(&b, "export %s=%s\n", v.Name, ShellQuote(v.Value))
		}
	case FormatDotenv:
		for _, v := range vars {
			if strings.ContainsAny(v.Value, "$`\n\r\x00") {
				return fmt.Errorf("envexec: the value of %s contains $, a backquote or a line break, which dotenv readers interpret differently: use --format sh or json", v.Name)
			}
			q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v.Value)
			fmt.Fprintf(&b, "%s=\"%s\"\n", v.Name, q)
		}
	case FormatJSON:
		m := make(map[string]string, len(vars))
		for _, v := range vars {
			m[v.Name] = v.Value
		}
		j, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("envexec: encode JSON: %w", err)
		}
		b.Write(j)
		b.WriteByte('\n')
	default:
		return fmt.Errorf("envexec: unknown format %q: use sh, dotenv or json", f)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ShellQuote quotes s for a POSIX shell: the result, read by sh, is s.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Environ returns base with vars set, replacing any earlier definitions of
// the same names.
func Environ(base []string, vars []Var) []string {
	drop := make(map[string]bool, len(vars))
	for _, v := range vars {
		drop[v.Name] = true
	}
	out := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if !drop[name] {
			out = append(out, kv)
		}
	}
	for _, v := range vars {
		out = append(out, v.Name+"="+v.Value)
	}
	return out
}
