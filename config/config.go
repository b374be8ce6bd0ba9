package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credhelper/credhelper/internal/fsutil"
)

// File is a parsed configuration file.
type File struct {
	// Defaults apply to every profile; a profile's own settings win.
	Defaults Profile `toml:"defaults" help:"settings every profile inherits; a profile's own settings win"`
	// Profiles by name.
	Profiles map[string]Profile `toml:"profiles" help:"one credential each; choose one with --profile"`
	// Plugins by name, referenced as plugin:NAME:KEY.
	Plugins map[string]Plugin `toml:"plugins" help:"out-of-process backends and issuers, used as plugin:NAME:KEY"`
	// Agent configures `credhelper agent`.
	Agent Agent `toml:"agent" help:"the agent's socket and metrics"`

	// Path is where the file was read from; empty if none.
	Path string `toml:"-"`
	// Missing reports that no file existed at Path (the default location):
	// the configuration is empty.
	Missing bool `toml:"-"`
	// Problems are the file's mistakes, each scoped to the profile,
	// plugin or section it is in, so that a mistake in one profile fails
	// only the commands that use that profile.
	Problems []Problem `toml:"-"`
	// Deprecated lists settings written in an old form that is still
	// read (flat keys that now live in a per-kind table).
	Deprecated []Problem `toml:"-"`

	lines map[string]int // key path -> line, from Parse
}

// Profile is one credential: where it is stored, who refreshes it, and how
// the faces present it. Each leaf field is one setting: its toml tag is the
// key, help its documentation, flag the command-line flag (and with it the
// CREDHELPER_* environment variable), default the built-in value, flat the
// deprecated key at the profile's top level that still sets it. Settings
// reads these tags; the README's settings reference is generated from them.
type Profile struct {
	Backend  string `toml:"backend" flag:"backend" help:"where the pair is stored: SCHEME:KEY (see Backends and issuers)" example:"\"file:~/.config/credhelper/cred.json\""`
	Issuer   string `toml:"issuer" flag:"issuer" help:"who refreshes it: SCHEME:ADDRESS; empty: the pair is never refreshed" example:"\"dev:127.0.0.1:7777\""`
	Endpoint string `toml:"endpoint" flag:"endpoint" help:"the endpoint callers need; a credential for any other endpoint is refused" example:"\"cell-us-west-2-1.prod.a.momentohq.com\""`

	// TLS for momento issuers.
	CAFile   string `toml:"ca_file" flag:"ca-file" help:"PEM CA bundle to trust for a momento issuer instead of the system roots"`
	Insecure bool   `toml:"insecure" flag:"insecure" help:"plaintext gRPC to a momento issuer (loopback dev issuers only)"`

	// Refresh engine settings.
	MinValidity     Duration `toml:"min_validity" flag:"min-validity" default:"1m" help:"least validity a returned token has left"`
	RefreshFloor    Duration `nonzero:"yes" toml:"refresh_floor" flag:"refresh-floor" default:"5m" help:"refresh at least this long before expiry"`
	RefreshFraction float64  `toml:"refresh_fraction" flag:"refresh-fraction" default:"0.25" help:"refresh when this fraction of the lifetime remains, if that is longer than refresh_floor"`
	LeaseDuration   Duration `nonzero:"yes" toml:"lease_duration" flag:"lease" default:"60s" help:"how long a refresh claim lasts"`
	IssuerTimeout   Duration `nonzero:"yes" toml:"issuer_timeout" flag:"issuer-timeout" default:"2m" help:"hard ceiling of one issuer call; the lease is renewed while it runs"`
	ClockSkew       Duration `toml:"clock_skew" flag:"clock-skew" default:"30s" help:"how far hosts' clocks may disagree"`
	JournalDir      string   `toml:"journal_dir" flag:"journal-dir" shown:"$XDG_STATE_HOME/credhelper/journal" help:"where issued but uncommitted pairs are journaled"`

	DefaultLifetime       Duration `nonzero:"yes" toml:"default_lifetime" flag:"default-lifetime" default:"1h" help:"lifetime given to an access token whose issuer states none (an OAuth2 response without expires_in and an opaque token); never 'never expires'"`
	UnsafeRefreshInMemory bool     `toml:"unsafe_refresh_in_memory" flag:"unsafe-refresh-in-memory" help:"agent and exec only: refresh a credential whose backend is read-only (env:), keeping the chain in memory; every other reader of the same source would then present a spent refresh token"`

	// Bootstrap, when set, lets the fleet heal a lineage that can no longer
	// be continued. It is inherited from [defaults] as a whole.
	Bootstrap Bootstrap `toml:"bootstrap" inherit:"whole" help:"how to mint a first pair when the lineage is broken or its refresh token expired"`

	// Per-kind settings: each backend or issuer scheme reads its own table.
	AWS    AWS    `toml:"aws" help:"settings of awssm: backends"`
	Vault  Vault  `toml:"vault" help:"settings of vault: backends, beyond the standard VAULT_* variables"`
	OAuth2 OAuth2 `toml:"oauth2" help:"settings of oauth2: issuers"`

	// Faces.
	Docker Docker `toml:"docker" inherit:"no" help:"registries the docker credential helper answers with this profile"`
	Git    Git    `toml:"git" inherit:"no" help:"requests the git credential helper answers with this profile"`
	Env    Env    `toml:"env" help:"variable names of credhelper env and exec"`

	// Faces for build tools and package managers.
	GoAuth    GoAuth    `toml:"goauth" inherit:"no" help:"URL prefixes the GOAUTH helper (credhelper goauth) answers with this profile"`
	Cargo     Cargo     `toml:"cargo" inherit:"no" help:"registries the cargo credential provider answers with this profile"`
	Kubelet   Kubelet   `toml:"kubelet" inherit:"no" help:"images the kubelet image credential provider answers with this profile"`
	Bazel     Bazel     `toml:"bazel" inherit:"no" help:"URIs the Bazel credential helper answers with this profile"`
	Terraform Terraform `toml:"terraform" inherit:"no" help:"hosts the Terraform credentials helper answers with this profile"`

	// Sink lists the files the agent keeps the profile's auth token in
	// ([[profiles.NAME.sink]]).
	Sink []Sink `toml:"sink" inherit:"no" help:"files the agent keeps the profile's auth token in, rewritten atomically on every new generation: path, format (token, env, json, template), template or template_file, mode, command, command_timeout, on_expiry"`
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
	Path           string   `toml:"path" help:"the file; its directory is created 0700 when missing" example:"\"/run/app/token\""`
	Format         string   `toml:"format" default:"token" help:"token (the token alone), env (KEY=\"value\" lines named by [env]), json (token, endpoint, expiry, generation) or template"`
	Template       string   `toml:"template" help:"a Go text/template over .Token .Endpoint .Expiry .ExpiryUnix .Generation .Profile (format = \"template\")"`
	TemplateFile   string   `toml:"template_file" help:"a file holding the template, read at start and reload"`
	Mode           string   `toml:"mode" default:"0600" help:"the file's permission bits, in octal" example:"\"0640\""`
	Command        []string `toml:"command" help:"argv (not a shell string) run after each write" example:"[\"systemctl\", \"--user\", \"reload\", \"app\"]"`
	CommandTimeout Duration `nonzero:"yes" toml:"command_timeout" default:"30s" help:"how long the command may run"`
	OnExpiry       string   `toml:"on_expiry" default:"empty" help:"empty or remove: what happens to the file when its pair falls below min_validity and no newer one replaced it"`
}

// FileMode returns the sink's permission bits (0 when unset: the default).
func (s Sink) FileMode() (os.FileMode, error) {
	if s.Mode == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(s.Mode, "0o"), 8, 32)
	if err != nil || n == 0 || n > 0o777 {
		return 0, fmt.Errorf("sink %s: mode %q is not octal permission bits such as \"0640\"", s.Path, s.Mode)
	}
	return os.FileMode(n), nil
}

// Check reports the first mistake in the sink's settings.
func (s Sink) Check() error {
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
	_, err := s.FileMode()
	return err
}

// AWS holds the settings of awssm backends; the AWS SDK's own environment
// (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_SECRETS_MANAGER, ...) applies
// beneath them.
type AWS struct {
	Region  string `toml:"region" flag:"region" flat:"region" help:"AWS region (default: the AWS SDK's, from $AWS_REGION or the AWS profile)" example:"\"us-west-2\""`
	Profile string `toml:"profile" flag:"aws-profile" flat:"aws_profile" help:"AWS named profile"`
}

// Vault holds the settings of vault backends: a token file (such as a Vault
// Agent sink) or an AppRole login.
type Vault struct {
	TokenFile    string `toml:"token_file" flag:"vault-token-file" flat:"vault_token_file" help:"file holding the Vault token, re-read when it changes"`
	RoleID       string `toml:"role_id" flag:"vault-role-id" flat:"vault_role_id" help:"AppRole role_id to log in with"`
	SecretIDFile string `toml:"secret_id_file" flag:"vault-secret-id-file" flat:"vault_secret_id_file" help:"file holding the AppRole secret_id, re-read at each login"`
	AppRoleMount string `toml:"approle_mount" flag:"vault-approle-mount" flat:"vault_approle_mount" shown:"approle" help:"mount path of the AppRole auth method"`
}

// OAuth2 holds the client settings of oauth2 issuers. The client secret is
// never written in the file: it comes from a variable or a file.
type OAuth2 struct {
	ClientID         string   `toml:"client_id" flag:"client-id" flat:"client_id" help:"OAuth2 client id" example:"\"my-service\""`
	ClientSecretEnv  string   `toml:"client_secret_env" flag:"client-secret-env" flat:"client_secret_env" help:"environment variable holding the client secret" example:"\"API_CLIENT_SECRET\""`
	ClientSecretFile string   `toml:"client_secret_file" flag:"client-secret-file" flat:"client_secret_file" help:"file holding the client secret"`
	Scopes           []string `toml:"scopes" flag:"scopes" flat:"scopes" help:"scopes to ask for" example:"[\"read\", \"write\"]"`
	AuthStyle        string   `toml:"auth_style" flag:"auth-style" flat:"auth_style" default:"basic" help:"how the client authenticates: basic (HTTP Basic), post (in the form) or auto (tries both)"`
	IntrospectionURL string   `toml:"introspection_url" flag:"introspection-url" flat:"introspection_url" help:"the server's RFC 7662 introspection endpoint; with it, an instance taking over an expired claim asks whether the refresh token was already spent before presenting it"`
}

// Bootstrap says how to mint a first pair when the lineage is broken or
// its refresh token expired: from a session token through the issuer's
// generate call (Momento, dev), or by running a command that prints a
// record as JSON ({"apiKey": ..., "refreshToken": ..., "validUntil": ...}).
type Bootstrap struct {
	SessionTokenEnv  string   `toml:"session_token_env" help:"environment variable holding the session token for the issuer's generate call"`
	SessionTokenFile string   `toml:"session_token_file" help:"file holding that session token"`
	TTL              Duration `nonzero:"yes" toml:"ttl" help:"lifetime asked of a generated pair" example:"\"720h\""`
	Command          []string `toml:"command" help:"argv (not a shell string) of a command that prints a record as JSON" example:"[\"/usr/local/bin/mint-pair\", \"--json\"]"`
	Timeout          Duration `nonzero:"yes" toml:"timeout" shown:"30s" example:"\"30s\"" help:"bound of the command or the generate call"`
}

// Configured reports whether a bootstrap is set.
func (b Bootstrap) Configured() bool {
	return b.SessionTokenEnv != "" || b.SessionTokenFile != "" || len(b.Command) > 0
}

// Docker maps registries to this profile for the docker credential helper.
type Docker struct {
	ServerURLs []string `toml:"server_urls" help:"registries this profile answers for (scheme optional; a path matches below it)" example:"[\"registry.example.com\"]"`
	Username   string   `toml:"username" shown:"<token>" help:"username to report; the default means the secret is an identity token"`
}

// Git matches git credential requests to this profile.
type Git struct {
	Protocol string `toml:"protocol" shown:"https" help:"protocol of matching requests"`
	Host     string `toml:"host" help:"host (with :port if any) of matching requests" example:"\"git.example.com\""`
	Path     string `toml:"path" help:"path prefix of matching requests (git sends paths only with credential.useHttpPath)"`
	Username string `toml:"username" shown:"credhelper" help:"username to answer with"`
}

// Env names the variables `credhelper env` and `exec` set.
type Env struct {
	TokenVar    string `toml:"token_var" shown:"MOMENTO_API_KEY" help:"variable for the auth token"`
	EndpointVar string `toml:"endpoint_var" shown:"MOMENTO_ENDPOINT" help:"variable for the endpoint"`
	ExpiryVar   string `toml:"expiry_var" help:"variable for the expiry in Unix seconds (0: never); none if empty"`
}

// GoAuth maps URL prefixes to this profile for Go's GOAUTH.
type GoAuth struct {
	// URLPrefixes this profile answers for: https://host[/path]; the go
	// command matches them by path segment.
	URLPrefixes []string `toml:"url_prefixes" help:"URL prefixes this profile answers for: https://host[/path], matched by path segment" example:"[\"https://go.example.com/private\"]"`
	// Username, when set, sends Basic authentication with the token as the
	// password; otherwise a Bearer token.
	Username string `toml:"username" help:"when set, Basic authentication with the token as the password; otherwise a Bearer token"`
}

// Cargo maps registries to this profile for cargo's credential provider.
type Cargo struct {
	// IndexURLs this profile answers for, as cargo names them
	// ("sparse+https://host/index/").
	IndexURLs []string `toml:"index_urls" help:"registry index URLs this profile answers for, as cargo names them" example:"[\"sparse+https://cargo.example.com/index/\"]"`
	// Registries this profile answers for, by their name in cargo's
	// configuration.
	Registries []string `toml:"registries" help:"registries this profile answers for, by their name in cargo's configuration" example:"[\"private\"]"`
}

// Kubelet matches images to this profile for the kubelet's image
// credential provider.
type Kubelet struct {
	// MatchImages uses the kubelet's matchImages syntax: globs per domain
	// label, an optional port and an optional path prefix.
	MatchImages []string `toml:"match_images" help:"images this profile answers for, in the kubelet's matchImages syntax" example:"[\"*.registry.example.com\", \"registry.example.com:5000/team\"]"`
	// Username reported with the token; default "credhelper".
	Username string `toml:"username" shown:"credhelper" help:"username reported with the token"`
}

// Bazel maps hosts to this profile for Bazel's credential helper.
type Bazel struct {
	// Hosts this profile answers for: host[:port], or *.domain for every
	// host below domain.
	Hosts []string `toml:"hosts" help:"hosts this profile answers for: host[:port], or *.domain for every host below it" example:"[\"cache.example.com\"]"`
}

// Terraform maps hosts to this profile for Terraform's and OpenTofu's
// credentials helper.
type Terraform struct {
	// Hosts this profile answers for, in ASCII (punycode) form.
	Hosts []string `toml:"hosts" help:"hosts this profile answers for, in ASCII (punycode) form" example:"[\"app.terraform.io\"]"`
}

// Plugin is an out-of-process backend or issuer.
type Plugin struct {
	Path   string   `toml:"path" shown:"$XDG_CONFIG_HOME/credhelper/plugins/credhelper-plugin-NAME" help:"the plugin binary"`
	Args   []string `toml:"args" help:"arguments passed to the plugin"`
	SHA256 string   `toml:"sha256" help:"hex SHA-256 of the binary; a binary that does not match is refused"`
	Env    []string `toml:"env" help:"variables the plugin gets: NAME passes the caller's value, NAME=value sets one; otherwise it sees only PATH, HOME and TMPDIR"`
}

// Agent configures the local agent.
type Agent struct {
	Socket      string `toml:"socket" flag:"socket" env:"CREDHELPER_AGENT_SOCKET" shown:"$XDG_RUNTIME_DIR/credhelper/agent.sock" help:"unix socket the agent listens on and callers dial"`
	MetricsAddr string `toml:"metrics_addr" flag:"metrics-addr" env:"CREDHELPER_AGENT_METRICS_ADDR" help:"unix:PATH (mode 0600, yours alone) or a loopback host:port (every local user can read it) for Prometheus /metrics; off if empty" example:"\"127.0.0.1:9464\""`
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

// configHome is $XDG_CONFIG_HOME, else ~/.config; empty if neither is
// known. A relative $XDG_CONFIG_HOME is ignored, as the XDG spec says.
func configHome() string { return fsutil.ConfigHome() }

// Duration is a time.Duration written as a Go duration string ("90s").
// A duration written explicitly is set even when it is zero ("0s"), so
// it overrides [defaults] and the built-in default instead of being
// taken for unset.
type Duration struct {
	time.Duration
	set bool
}

// IsSet reports whether the duration was written (a zero Duration is
// unset; "0s" is set).
func (d Duration) IsSet() bool { return d.set || d.Duration != 0 }

// errNegativeDuration is a duration written with a minus sign.
var errNegativeDuration = errors.New("write a length of time, such as 90s or 5m")

// errZeroDuration is "0s" for a setting that must be longer than zero.
var errZeroDuration = errors.New("must be longer than zero, such as 90s or 5m")

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err == nil && v < 0 {
		return fmt.Errorf("%q is negative: %w", b, errNegativeDuration)
	}
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"90s\" or \"5m\"", b)
	}
	d.Duration, d.set = v, true
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// MarshalJSON is null for an unset duration, so that a profile handed on
// as JSON (to the background refresher) keeps unset apart from "0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	if !d.IsSet() {
		return []byte("null"), nil
	}
	return json.Marshal(d.String())
}

// DefaultPath returns $CREDHELPER_CONFIG, else the XDG location.
func DefaultPath() string {
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	dir := configHome()
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "credhelper", "config.toml")
}

// MaxFileSize caps the size of a configuration file.
const MaxFileSize = 1 << 20

// Load reads the file at path. A missing file at the default location is an
// empty configuration with Missing set; a missing file the user named
// explicitly is an error. Only a file that cannot be read or parsed at all
// is an error: mistakes in its settings are Problems, scoped to where they
// are. The file goes through the local-state trust rule: it and every
// directory above it belong to the user or root and nobody else can write
// them; a FIFO, device, directory or file over MaxFileSize is refused at
// once.
func Load(path string, explicit bool) (*File, error) {
	data, err := fsutil.ReadFile(path, fsutil.Rule{What: "config file", MaxSize: MaxFileSize})
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return &File{Path: path, Missing: true}, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &MissingFileError{Path: path}
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	f.setPath(path)
	return f, nil
}

// setPath records where f was read from, also in its problems.
func (f *File) setPath(path string) {
	f.Path = path
	for i := range f.Problems {
		f.Problems[i].File = path
	}
	for i := range f.Deprecated {
		f.Deprecated[i].File = path
	}
}

// ProfileNames returns the profile names, sorted.
func (f *File) ProfileNames() []string {
	return slices.Sorted(maps.Keys(f.Profiles))
}

// Profile returns the named profile with [defaults] applied. An unknown
// name is an error unless it is "default" (flags then supply everything).
// A profile with problems (or [defaults] with problems) is returned as far
// as it decoded, together with a *ProfileError listing them: only the
// commands that use it fail.
func (f *File) Profile(name string) (Profile, error) {
	if name == "" {
		name = DefaultProfile
	}
	p, ok := f.Profiles[name]
	if !ok {
		if name == DefaultProfile {
			return f.Defaults, f.problemsOf(name, scopeDefaults)
		}
		return Profile{}, &UnknownProfileError{Name: name, File: f}
	}
	return p.withDefaults(f.Defaults), f.problemsOf(name, scopeDefaults, profileScope(name))
}

// MissingFileError reports a config file named explicitly (--config,
// $CREDHELPER_CONFIG) that does not exist.
type MissingFileError struct {
	Path string
	// Profile names the example's profile; "default" when empty.
	Profile string
}

func (e *MissingFileError) Error() string {
	return fmt.Sprintf("config: no config file at %s: create it, for example with the profile below, or point --config elsewhere", e.Path)
}

// Unwrap returns fs.ErrNotExist.
func (e *MissingFileError) Unwrap() error { return fs.ErrNotExist }

// Example is a profile to create, for the command to show after the error.
func (e *MissingFileError) Example() string {
	if e.Profile == "" {
		return ExampleProfile(DefaultProfile)
	}
	return ExampleProfile(e.Profile)
}

// DefaultProfile is the profile used when none is named.
const DefaultProfile = "default"

// UnknownProfileError reports a profile the file does not define.
type UnknownProfileError struct {
	Name string
	File *File
}

func (e *UnknownProfileError) Error() string {
	f := e.File
	switch {
	case f.Missing:
		return fmt.Sprintf("config: no profile %q: there is no config file at %s", e.Name, f.Path)
	case f.Path == "" && len(f.Profiles) == 0:
		return fmt.Sprintf("config: no profile %q: no config file was found (set --config or $%s)", e.Name, EnvConfig)
	case len(f.Profiles) == 0:
		return fmt.Sprintf("config: no profile %q: %s defines no profiles: add [profiles.%s]", e.Name, f.Path, e.Name)
	}
	in := ""
	if f.Path != "" {
		in = " in " + f.Path
	}
	if near := nearest(e.Name, f.ProfileNames()); near != "" {
		return fmt.Sprintf("config: no profile %q%s: did you mean %q? (profiles: %s)", e.Name, in, near, strings.Join(f.ProfileNames(), ", "))
	}
	return fmt.Sprintf("config: no profile %q%s: add [profiles.%s] or choose one of: %s", e.Name, in, e.Name, strings.Join(f.ProfileNames(), ", "))
}

// Example is a short profile to create, for the command to show after the
// error when there is no file.
func (e *UnknownProfileError) Example() string {
	if !e.File.Missing && e.File.Path != "" {
		return ""
	}
	return ExampleProfile(e.Name)
}

// ExampleProfile is a three-line profile named name that works with the
// built-in dev issuer.
func ExampleProfile(name string) string {
	return fmt.Sprintf("[profiles.%s]\nbackend = \"file:~/.config/credhelper/%s.json\"\nissuer  = \"dev:127.0.0.1:7777\"\n", name, name)
}

// withDefaults fills p's unset settings from d, except in tables tagged
// inherit:"no" (a profile's docker and git matches are its own) and in
// tables tagged inherit:"whole" that p sets (its bootstrap is its own).
func (p Profile) withDefaults(d Profile) Profile {
	own := p
	for _, s := range Settings() {
		if s.Scope != ScopeProfile || !s.inherits(&own) {
			continue
		}
		dst := s.field(&p)
		if dst.IsZero() {
			dst.Set(s.field(&d))
		}
	}
	return p
}
