package docker

import (
	"errors"
	"net/url"
	"strings"
)

// serverURL is a server URL normalised for matching.
type serverURL struct {
	scheme string // "", "http" or "https"
	host   string // lower-case host[:port]
	path   string // without trailing slash; "" for the root
}

// CheckServerURL reports why raw cannot be a docker.server_urls entry,
// or nil.
func CheckServerURL(raw string) error {
	_, err := parseServerURL(raw)
	return err
}

// CheckUsername reports why name cannot be docker.username, or nil.
func CheckUsername(name string) error {
	if strings.ContainsAny(name, "\x00\n\r") {
		return errors.New("contains a control character")
	}
	return nil
}

// parseServerURL parses a registry address the way docker-credential-helpers'
// registryurl.Parse does: a missing scheme is allowed, only http and https
// are accepted, a host is required, and the query is dropped.
func parseServerURL(raw string) (serverURL, error) {
	for _, r := range raw {
		if r < 0x21 || r == 0x7f {
			return serverURL{}, errors.New("contains a space or control character")
		}
	}
	s := raw
	if !strings.Contains(s, "://") && !strings.HasPrefix(s, "//") {
		s = "//" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return serverURL{}, errors.New("is not a URL or host[:port]")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "" && scheme != "http" && scheme != "https" {
		return serverURL{}, errors.New("has a scheme other than http or https")
	}
	if u.Hostname() == "" {
		return serverURL{}, errors.New("has no host name")
	}
	if u.User != nil {
		return serverURL{}, errors.New("must not contain user information")
	}
	return serverURL{scheme: scheme, host: strings.ToLower(u.Host), path: strings.TrimRight(u.EscapedPath(), "/")}, nil
}

// matches reports whether the configured URL m serves the request r.
func (m serverURL) matches(r serverURL) bool {
	if m.host != r.host {
		return false
	}
	if m.scheme != "" && r.scheme != "" && m.scheme != r.scheme {
		return false
	}
	return m.path == "" || r.path == m.path || strings.HasPrefix(r.path, m.path+"/")
}
