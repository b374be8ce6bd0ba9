package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/credhelper/credhelper/protocols/face"
)

// ErrBadRequest reports a command line Terraform would not use.
var ErrBadRequest = errors.New("terraform: malformed request")

// Rule maps hosts to a profile.
type Rule struct {
	Profile string
	// Hosts in ASCII form, optionally with :port.
	Hosts []string
}

// Helper answers Terraform's commands for a fixed set of rules. It is safe
// for concurrent use if its Resolver is.
type Helper struct {
	resolver face.Resolver
	hosts    map[string]string // lower-case host[:port] -> profile
}

// New returns a Helper for rules; it refuses a host that is not an ASCII
// host name (Terraform passes the punycode form) and a host two profiles
// claim.
func New(r face.Resolver, rules []Rule) (*Helper, error) {
	if r == nil {
		return nil, errors.New("terraform: Resolver is nil")
	}
	h := &Helper{resolver: r, hosts: map[string]string{}}
	for _, rule := range rules {
		if rule.Profile == "" {
			return nil, errors.New("terraform: a rule names no profile")
		}
		for _, raw := range rule.Hosts {
			k, err := normaliseHost(raw)
			if err == nil {
				err = CheckHost(raw)
			}
			if err != nil {
				return nil, fmt.Errorf("terraform: profile %q: hosts entry %q: %w", rule.Profile, raw, err)
			}
			if other, dup := h.hosts[k]; dup && other != rule.Profile {
				return nil, fmt.Errorf("terraform: profiles %q and %q both name host %q: keep it in one profile's terraform.hosts", other, rule.Profile, raw)
			}
			h.hosts[k] = rule.Profile
		}
	}
	return h, nil
}

// CheckHost reports why raw cannot be a terraform.hosts entry, and what
// to write instead, or nil.
func CheckHost(raw string) error {
	if h, ok := face.HostOf(raw); ok {
		return &face.EntryError{Why: "a hosts entry is a host, as Terraform passes it, not a URL", Instead: h}
	}
	_, err := normaliseHost(raw)
	return err
}

func normaliseHost(raw string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	if s == "" {
		return "", &face.EntryError{Why: "empty host", Instead: "app.terraform.io"}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':') {
			return "", &face.EntryError{Why: "not a host name in ASCII (punycode) form, optionally with :port, as Terraform passes it", Instead: "app.terraform.io"}
		}
	}
	return s, nil
}

// Token is the answer to get.
type Token struct {
	Token string `json:"token,omitempty"`
}

// Serve runs one command. args are what follows the configured args:
// COMMAND HOST. On error nothing has been written to out.
func (h *Helper) Serve(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	if len(args) != 2 {
		return fmt.Errorf("%w: usage: terraform-credentials-credhelper get|store|forget HOST", ErrBadRequest)
	}
	command, rawHost := args[0], args[1]
	hostKey, err := normaliseHost(rawHost)
	if err != nil {
		return fmt.Errorf("%w: host %q: %v", ErrBadRequest, rawHost, err)
	}
	profile, served := h.hosts[hostKey]
	switch command {
	case "get":
		var t Token
		if served {
			p, err := h.resolver.Credential(ctx, profile)
			if err != nil {
				return fmt.Errorf("terraform: profile %q: %w", profile, err)
			}
			if t.Token, err = face.Token(p, profile); err != nil {
				return fmt.Errorf("terraform: %w", err)
			}
		}
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("terraform: encode answer: %w", err)
		}
		_, err = out.Write(append(b, '\n'))
		return err
	case "store":
		// Read the object to its end whatever happens, so Terraform never
		// blocks writing it; nothing of it is kept.
		if in != nil {
			if _, err := io.Copy(io.Discard, in); err != nil {
				return fmt.Errorf("terraform: read standard input: %w", err)
			}
		}
		if served {
			return fmt.Errorf("terraform: %s is served by credhelper profile %q, which terraform login cannot change: store a new pair with 'credhelper put --profile %s'", hostKey, profile, profile)
		}
		return fmt.Errorf("terraform: credhelper does not keep terraform logins and no profile serves %s: add it to a profile's terraform.hosts, or use a credentials block or TF_TOKEN_* for it", hostKey)
	case "forget":
		if served {
			return fmt.Errorf("terraform: %s is served by credhelper profile %q and is not deleted by terraform logout: remove it from the profile's terraform.hosts to stop serving it", hostKey, profile)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown command %q: use get, store or forget", ErrBadRequest, command)
}
