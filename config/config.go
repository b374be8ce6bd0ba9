package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// File is a parsed configuration file.
type File struct {
	// Defaults apply to every profile; a profile's own settings win.
	Defaults Profile `toml:"defaults"`
	// Profiles by name.
	Profiles map[string]Profile `toml:"profiles"`
	// Plugins by name, referenced as plugin:NAME:KEY.
	Plugins map[string]Plugin `toml:"plugins"`
	// Agent configures `credhelper agent`.
	Agent Agent `toml:"agent"`
	// Path is where the file was read from; empty if none.
	Path string `toml:"-"`
}

// Profile is one credential: where it is stored, who refreshes it, and how
// the faces present it.
type Profile struct {
	// Backend is SCHEME:KEY: file:PATH, env:PREFIX, awssm:NAME_OR_ARN,
	// vault:MOUNT/PATH or plugin:NAME:KEY.
	Backend string `toml:"backend"`
	// Issuer is SCHEME:ADDRESS: dev:HOST:PORT, momento:HOST:PORT (or
	// "momento" to derive the control endpoint from the key) or
	// oauth2:TOKEN_URL. Empty means the pair is never refreshed.
	Issuer string `toml:"issuer"`
	// Endpoint, when set, is the endpoint callers need; a credential for
	// another endpoint is refused.
	Endpoint string `toml:"endpoint"`

	// AWS settings for awssm backends.
	Region     string `toml:"region"`
	AWSProfile string `toml:"aws_profile"`

	// Vault settings for vault backends, beyond the standard VAULT_*
	// environment: a token file (such as a Vault Agent sink), or AppRole.
	VaultTokenFile    string `toml:"vault_token_file"`
	VaultRoleID       string `toml:"vault_role_id"`
	VaultSecretIDFile string `toml:"vault_secret_id_file"`
	VaultAppRoleMount string `toml:"vault_approle_mount"`

	// OAuth2 client settings for oauth2 issuers.
	ClientID         string   `toml:"client_id"`
	ClientSecretEnv  string   `toml:"client_secret_env"`
	ClientSecretFile string   `toml:"client_secret_file"`
	Scopes           []string `toml:"scopes"`
	AuthStyle        string   `toml:"auth_style"`
	// IntrospectionURL is the OAuth2 server's RFC 7662 introspection
	// endpoint; with it, an instance taking over an expired claim asks
	// whether the refresh token was already spent before presenting it.
	IntrospectionURL string `toml:"introspection_url"`

	// TLS for momento issuers: a CA bundle to trust instead of the system
	// roots, and plaintext for a loopback dev issuer.
	CAFile   string `toml:"ca_file"`
	Insecure bool   `toml:"insecure"`

	// Refresh engine settings; zero means the engine's default.
	MinValidity     Duration `toml:"min_validity"`
	RefreshFloor    Duration `toml:"refresh_floor"`
	RefreshFraction float64  `toml:"refresh_fraction"`
	LeaseDuration   Duration `toml:"lease_duration"`
	IssuerTimeout   Duration `toml:"issuer_timeout"`
	ClockSkew       Duration `toml:"clock_skew"`
	JournalDir      string   `toml:"journal_dir"`
	// DefaultLifetime is the lifetime given to an access token whose
	// issuer states none (an OAuth2 response without expires_in and an
	// opaque token); default 1h. Never "never expires".
	DefaultLifetime Duration `toml:"default_lifetime"`
	// UnsafeRefreshInMemory lets the agent and exec refresh a credential
	// whose backend is read-only, keeping the chain in their memory only;
	// every other reader of the same source would then present a spent
	// refresh token. Other commands never refresh such a credential.
	UnsafeRefreshInMemory bool `toml:"unsafe_refresh_in_memory"`

	// Bootstrap, when set, lets the fleet heal a lineage that can no
	// longer be continued.
	Bootstrap Bootstrap `toml:"bootstrap"`

	// Faces.
	Docker Docker `toml:"docker"`
	Git    Git    `toml:"git"`
	Env    Env    `toml:"env"`

	// Sink lists the files the agent keeps the profile's current auth
	// token in ([[profiles.NAME.sink]]); never taken from [defaults].
	Sink []Sink `toml:"sink"`
}

// Sink formats.
const (
	SinkToken    = "token"
	SinkEnv      = "env"
	SinkJSON     = "json"
	SinkTemplate = "template"
)

// Sink expiry actions: what happens to a sink file once its pair has less
// than min_validity left and no newer pair replaced it.
const (
	SinkExpiryEmpty  = "empty"
	SinkExpiryRemove = "remove"
)

// Sink is a file the agent rewrites, atomically, with the profile's auth
// token at start and on every new generation, like a Vault Agent file sink
// or template.
type Sink struct {
	// Path is the file; its directory is created 0700 when missing.
	Path string `toml:"path"`
	// Format is token (default: the token alone), env (KEY="value" lines
	// named by the profile's [env] table), json, or template.
	Format string `toml:"format"`
	// Template is a Go text/template (format = "template"), inline;
	// TemplateFile reads it from a file at start instead.
	Template     string `toml:"template"`
	TemplateFile string `toml:"template_file"`
	// Mode is the file's permission bits, default 0600.
	Mode FileMode `toml:"mode"`
	// Command runs after each write (an argv list, not a shell string),
	// bounded by CommandTimeout (default 30s).
	Command        []string `toml:"command"`
	CommandTimeout Duration `toml:"command_timeout"`
	// OnExpiry is empty (default: the file is truncated) or remove.
	OnExpiry string `toml:"on_expiry"`
}

// FileMode is a file's permission bits, written "0640" or 0o640.
type FileMode uint32

// UnmarshalTOML accepts an octal string or an integer (0o640).
func (m *FileMode) UnmarshalTOML(v any) error {
	var n uint64
	switch v := v.(type) {
	case string:
		u, err := strconv.ParseUint(strings.TrimPrefix(v, "0o"), 8, 32)
		if err != nil {
			return fmt.Errorf("mode %q is not octal permission bits such as \"0640\"", v)
		}
		n = u
	case int64:
		if v < 0 {
			return fmt.Errorf("mode %d is not permission bits: write it as \"0640\" or 0o640", v)
		}
		n = uint64(v)
	default:
		return fmt.Errorf("mode %v is not permission bits: write it as \"0640\" or 0o640", v)
	}
	if n == 0 || n > 0o777 {
		return fmt.Errorf("mode %#o is not permission bits between 0o400 and 0o777: write it as \"0640\" or 0o640 (a decimal 640 is not octal)", n)
	}
	*m = FileMode(n)
	return nil
}

func (s Sink) check() error {
	switch {
	case s.Path == "":
		return errors.New("a sink has no path: set path = \"/run/app/token\"")
	case !filepath.IsAbs(s.Path) && !strings.HasPrefix(s.Path, "~/"):
		return fmt.Errorf("sink path %q must be absolute (or start with ~/)", s.Path)
	}
	switch s.Format {
	case "", SinkToken, SinkEnv, SinkJSON:
		if s.Template != "" || s.TemplateFile != "" {
			return fmt.Errorf("sink %s: template and template_file need format = \"template\"", s.Path)
		}
	case SinkTemplate:
		if (s.Template == "") == (s.TemplateFile == "") {
			return fmt.Errorf("sink %s: format = \"template\" needs exactly one of template (inline) or template_file", s.Path)
		}
	default:
		return fmt.Errorf("sink %s: format %q: use token, env, json or template", s.Path, s.Format)
	}
	switch s.OnExpiry {
	case "", SinkExpiryEmpty, SinkExpiryRemove:
	default:
		return fmt.Errorf("sink %s: on_expiry %q: use empty or remove", s.Path, s.OnExpiry)
	}
	if len(s.Command) > 0 && s.Command[0] == "" {
		return fmt.Errorf("sink %s: command's first element is empty: give the program, then its arguments", s.Path)
	}
	return nil
}

// Bootstrap says how to mint a first pair when the lineage is broken or
// its refresh token expired: from a session token through the issuer's
// generate call (Momento, dev), or by running a command that prints a
// record as JSON ({"apiKey": ..., "refreshToken": ..., "validUntil": ...}).
type Bootstrap struct {
	// SessionTokenEnv or SessionTokenFile holds the session token.
	SessionTokenEnv  string `toml:"session_token_env"`
	SessionTokenFile string `toml:"session_token_file"`
	// TTL is the lifetime asked of a generated pair.
	TTL Duration `toml:"ttl"`
	// Command is an argv list (not a shell string) run to print a pair.
	Command []string `toml:"command"`
	// Timeout bounds the command or the generate call; default 30s.
	Timeout Duration `toml:"timeout"`
}

// Configured reports whether a bootstrap is set.
func (b Bootstrap) Configured() bool {
	return b.SessionTokenEnv != "" || b.SessionTokenFile != "" || len(b.Command) > 0
}

// Docker maps registries to this profile for the docker credential helper.
type Docker struct {
	// ServerURLs this profile answers for.
	ServerURLs []string `toml:"server_urls"`
	// Username to report; default "<token>" (Secret is an identity token).
	Username string `toml:"username"`
}

// Git matches git credential requests to this profile.
type Git struct {
	Protocol string `toml:"protocol"`
	Host     string `toml:"host"`
	Path     string `toml:"path"`
	Username string `toml:"username"`
}

// Env names the variables `credhelper env` and `exec` set.
type Env struct {
	TokenVar    string `toml:"token_var"`
	EndpointVar string `toml:"endpoint_var"`
	ExpiryVar   string `toml:"expiry_var"`
}

// Plugin is an out-of-process backend or issuer.
type Plugin struct {
	// Path is the plugin binary; default PluginDir()/credhelper-plugin-NAME.
	Path string `toml:"path"`
	// Args are passed to the plugin.
	Args []string `toml:"args"`
	// SHA256 is the binary's hex digest; a binary that does not match is
	// refused.
	SHA256 string `toml:"sha256"`
	// Env lists variables the plugin gets: "NAME" passes the caller's value,
	// "NAME=value" sets one. Otherwise it sees only PATH, HOME and TMPDIR.
	Env []string `toml:"env"`
}

// PluginDir is where plugin binaries live by default:
// $XDG_CONFIG_HOME/credhelper/plugins (~/.config/credhelper/plugins).
func PluginDir() string {
	dir := configHome()
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "credhelper", "plugins")
}

// configHome is $XDG_CONFIG_HOME, else ~/.config; empty if neither is known.
func configHome() string {
	if dir := os.Getenv("XDG_CONFIG_HOME"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config")
}

// Agent configures the local agent.
type Agent struct {
	Socket      string `toml:"socket"`
	MetricsAddr string `toml:"metrics_addr"`
}

// Duration is a time.Duration written as a Go duration string ("90s").
type Duration struct{ time.Duration }

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration such as \"90s\" or \"5m\"", b)
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// DefaultPath returns $CREDHELPER_CONFIG, else the XDG location.
func DefaultPath() string {
	if p := os.Getenv("CREDHELPER_CONFIG"); p != "" {
		return p
	}
	dir := configHome()
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "credhelper", "config.toml")
}

// Load reads the file at path. A missing file at the default location is an
// empty configuration; a missing file the user named explicitly is an error.
func Load(path string, explicit bool) (*File, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return &File{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	f.Path = path
	return f, nil
}

// Parse decodes a configuration, refusing unknown settings.
func Parse(data []byte) (*File, error) {
	var f File
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
		}
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("unknown setting %s: check the spelling against the README", strings.Join(keys, ", "))
	}
	sinks := map[string]string{}
	for _, name := range f.ProfileNames() {
		p := f.Profiles[name]
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("profile %q: %w", name, err)
		}
		for _, s := range p.Sink {
			if other, ok := sinks[s.Path]; ok {
				return nil, fmt.Errorf("profile %q: sink path %s is given twice (also in profile %q): give each sink its own file", name, s.Path, other)
			}
			sinks[s.Path] = name
		}
	}
	if err := f.Defaults.check(); err != nil {
		return nil, fmt.Errorf("defaults: %w", err)
	}
	if len(f.Defaults.Sink) > 0 {
		return nil, errors.New("defaults: sinks belong to a profile ([[profiles.NAME.sink]]), not to [defaults]")
	}
	return &f, nil
}

func (p Profile) check() error {
	if p.Backend != "" {
		if _, err := ParseSpec(p.Backend, BackendSchemes); err != nil {
			return err
		}
	}
	if p.Issuer != "" {
		if _, err := ParseSpec(p.Issuer, IssuerSchemes); err != nil {
			return err
		}
	}
	if p.RefreshFraction < 0 || p.RefreshFraction >= 1 {
		return fmt.Errorf("refresh_fraction %v must be in [0, 1)", p.RefreshFraction)
	}
	for _, s := range p.Sink {
		if err := s.check(); err != nil {
			return err
		}
	}
	return nil
}

// ProfileNames returns the profile names, sorted.
func (f *File) ProfileNames() []string {
	names := make([]string, 0, len(f.Profiles))
	for n := range f.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Profile returns the named profile with defaults applied. An unknown name
// is an error unless the file has no profiles at all and name is "default"
// (flags then supply everything).
func (f *File) Profile(name string) (Profile, error) {
	p, ok := f.Profiles[name]
	if !ok {
		if name == "default" || name == "" {
			return f.Defaults, nil
		}
		return Profile{}, fmt.Errorf("config: no profile %q%s: add [profiles.%s] or choose one of: %s", name, f.where(), name, strings.Join(f.ProfileNames(), ", "))
	}
	return p.withDefaults(f.Defaults), nil
}

func (f *File) where() string {
	if f.Path == "" {
		return ""
	}
	return " in " + f.Path
}

// withDefaults fills p's zero fields from d.
func (p Profile) withDefaults(d Profile) Profile {
	str := func(v *string, dv string) {
		if *v == "" {
			*v = dv
		}
	}
	dur := func(v *Duration, dv Duration) {
		if v.Duration == 0 {
			*v = dv
		}
	}
	str(&p.Backend, d.Backend)
	str(&p.Issuer, d.Issuer)
	str(&p.Endpoint, d.Endpoint)
	str(&p.Region, d.Region)
	str(&p.AWSProfile, d.AWSProfile)
	str(&p.ClientID, d.ClientID)
	str(&p.ClientSecretEnv, d.ClientSecretEnv)
	str(&p.ClientSecretFile, d.ClientSecretFile)
	str(&p.AuthStyle, d.AuthStyle)
	str(&p.CAFile, d.CAFile)
	str(&p.VaultTokenFile, d.VaultTokenFile)
	str(&p.VaultRoleID, d.VaultRoleID)
	str(&p.VaultSecretIDFile, d.VaultSecretIDFile)
	str(&p.VaultAppRoleMount, d.VaultAppRoleMount)
	str(&p.JournalDir, d.JournalDir)
	if len(p.Scopes) == 0 {
		p.Scopes = d.Scopes
	}
	p.Insecure = p.Insecure || d.Insecure
	dur(&p.MinValidity, d.MinValidity)
	dur(&p.RefreshFloor, d.RefreshFloor)
	dur(&p.LeaseDuration, d.LeaseDuration)
	dur(&p.IssuerTimeout, d.IssuerTimeout)
	dur(&p.ClockSkew, d.ClockSkew)
	dur(&p.DefaultLifetime, d.DefaultLifetime)
	str(&p.IntrospectionURL, d.IntrospectionURL)
	p.UnsafeRefreshInMemory = p.UnsafeRefreshInMemory || d.UnsafeRefreshInMemory
	if !p.Bootstrap.Configured() {
		p.Bootstrap = d.Bootstrap
	}
	if p.RefreshFraction == 0 {
		p.RefreshFraction = d.RefreshFraction
	}
	str(&p.Env.TokenVar, d.Env.TokenVar)
	str(&p.Env.EndpointVar, d.Env.EndpointVar)
	str(&p.Env.ExpiryVar, d.Env.ExpiryVar)
	return p
}
