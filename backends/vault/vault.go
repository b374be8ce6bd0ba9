package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"

	"github.com/credhelper/credhelper/provider"
)

// Backend stores credentials in KV version 2 secrets. Create one with New
// or NewFromEnv; the zero value is not usable.
type Backend struct {
	client       *api.Client
	logger       *slog.Logger
	approle      *approle.AppRoleAuth // nil when a token was given
	approleMount string               // where AppRole is enabled, "approle"

	mu     sync.Mutex          // guards mounts
	mounts map[string]struct{} // KV v2 mount paths met so far, "team/kv/"

	authMu   sync.Mutex // serialises logins; guards loggedIn
	loggedIn bool
	newAuth  chan *api.Secret // logins after a 403, for the watcher; capacity 1
	stopOnce sync.Once
	stop     chan struct{} // closed by Close: ends the token watcher
	watching sync.WaitGroup
}

var (
	_ provider.Backend      = (*Backend)(nil)
	_ provider.WriteChecker = (*Backend)(nil)
	_ io.Closer             = (*Backend)(nil)
)

// New returns a Backend that talks to Vault through client. The options are
// applied to client itself: Address, Namespace and a token replace the
// client's own, and with AppRole credentials the backend logs in with
// client and keeps its token renewed until Close.
//
// New does no I/O except reading Options.TokenFile; an AppRole login
// happens on first use, with that call's context.
func New(client *api.Client, optFns ...func(*Options)) (*Backend, error) {
	if client == nil {
		return nil, errors.New("vault: New needs an *api.Client: use NewFromEnv to build one from VAULT_ADDR and VAULT_TOKEN")
	}
	var o Options
	for _, fn := range optFns {
		fn(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	b := &Backend{
		client:  client,
		logger:  o.Logger,
		mounts:  make(map[string]struct{}),
		stop:    make(chan struct{}),
		newAuth: make(chan *api.Secret, 1),
	}
	if b.logger == nil {
		b.logger = slog.New(slog.DiscardHandler)
	}
	// Everything that can fail runs before the client is changed.
	if o.useAppRole() {
		secretID := &approle.SecretID{FromString: o.AppRole.SecretID, FromFile: o.AppRole.SecretIDFile}
		var opts []approle.LoginOption
		if o.AppRole.MountPath != "" {
			opts = append(opts, approle.WithMountPath(o.AppRole.MountPath))
		}
		auth, err := approle.NewAppRoleAuth(o.AppRole.RoleID, secretID, opts...)
		if err != nil {
			return nil, fmt.Errorf("vault: AppRole: %w", err)
		}
		b.approle = auth
		b.approleMount = o.AppRole.MountPath
		if b.approleMount == "" {
			b.approleMount = "approle"
		}
	}
	token := o.Token
	if o.TokenFile != "" {
		var err error
		if token, err = readTokenFile(o.TokenFile); err != nil {
			return nil, err
		}
	}
	if b.approle == nil && token == "" && client.Token() == "" {
		return nil, errors.New("vault: no Vault token: set VAULT_TOKEN, or use the Token, TokenFile or AppRole options")
	}
	if o.Address != "" {
		if err := client.SetAddress(o.Address); err != nil {
			return nil, fmt.Errorf("vault: Address: %w", err)
		}
	}
	if o.Namespace != "" {
		client.SetNamespace(o.Namespace)
	}
	switch {
	case b.approle != nil:
		client.ClearToken() // the AppRole login supplies the token
	case token != "":
		client.SetToken(token)
	}
	return b, nil
}

// NewFromEnv returns a Backend with a client configured from the standard
// environment (VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT,
// VAULT_CLIENT_CERT, VAULT_SKIP_VERIFY, VAULT_MAX_RETRIES, ...) and then
// from the options, which take precedence.
func NewFromEnv(optFns ...func(*Options)) (*Backend, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault: read the VAULT_* environment: %w", cfg.Error)
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: build the API client from the VAULT_* environment: %w", err)
	}
	return New(client, optFns...)
}

// Close stops the background renewal of an AppRole token. The backend must
// not be used after Close. It does not revoke the token.
func (b *Backend) Close() error {
	b.stopOnce.Do(func() { close(b.stop) })
	b.watching.Wait()
	return nil
}

// kvState is what a KV v2 data read says about a secret.
type kvState struct {
	// version is the current version number; 0 when the secret was never
	// written (or its metadata was deleted).
	version uint64
	// data is the current version's key/value map; nil when the secret is
	// absent or its current version is soft-deleted or destroyed.
	data map[string]any
}

// read reads the current version of the secret at loc.
func (b *Backend) read(ctx context.Context, loc location) (kvState, error) {
	path := loc.dataPath()
	// A deleted or destroyed current version comes back as a 404 whose body
	// still carries the metadata; the API client returns it as a Secret.
	sec, err := b.client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return kvState{}, classify(err, "read", path, "read")
	}
	if sec == nil || sec.Data == nil {
		return kvState{}, nil
	}
	meta, _ := sec.Data["metadata"].(map[string]any)
	v, ok := versionOf(meta["version"])
	if !ok || v == 0 {
		return kvState{}, fmt.Errorf("vault: read %q: %w", path, errNoVersion)
	}
	data, _ := sec.Data["data"].(map[string]any)
	return kvState{version: v, data: data}, nil
}

// Load returns the secret's current version as a JSON object of its keys.
// A secret that was never written, or whose current version is deleted or
// destroyed, is provider.ErrNotFound.
func (b *Backend) Load(ctx context.Context, key string) (provider.Entry, error) {
	var e provider.Entry
	err := b.withAuth(ctx, func() (err error) {
		e, err = b.load(ctx, key)
		return err
	})
	return e, err
}

func (b *Backend) load(ctx context.Context, key string) (provider.Entry, error) {
	loc, err := b.locate(ctx, key)
	if err != nil {
		return provider.Entry{}, err
	}
	st, err := b.read(ctx, loc)
	if err != nil {
		return provider.Entry{}, err
	}
	if st.data == nil {
		return provider.Entry{}, fmt.Errorf("vault: no secret at %q: %w", loc.dataPath(), provider.ErrNotFound)
	}
	value, err := fromData(st.data)
	if err != nil {
		return provider.Entry{}, err
	}
	return provider.Entry{Value: value, Version: formatVersion(st.version)}, nil
}

// CompareAndSwap writes value as a new version of the secret with
// options.cas set to expected, so Vault itself refuses the write when
// another writer got there first. The zero expected version creates the
// secret: with cas 0 when it never existed, or with cas set to its current
// version when that version is deleted or destroyed (a concurrent writer
// moves the version on, so that write still fails for all but one).
func (b *Backend) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	data, err := toData(value)
	if err != nil {
		return "", err
	}
	var v provider.Version
	err = b.withAuth(ctx, func() (err error) {
		v, err = b.compareAndSwap(ctx, key, expected, data)
		return err
	})
	return v, err
}

func (b *Backend) compareAndSwap(ctx context.Context, key string, expected provider.Version, data map[string]any) (provider.Version, error) {
	loc, err := b.locate(ctx, key)
	if err != nil {
		return "", err
	}
	var cas uint64
	if expected == "" {
		st, err := b.read(ctx, loc)
		if err != nil {
			return "", err
		}
		if st.data != nil {
			return "", fmt.Errorf("vault: create %q: the secret already exists at version %d: load it and swap against that version: %w", loc.dataPath(), st.version, provider.ErrConflict)
		}
		cas = st.version
	} else {
		n, ok := parseVersion(expected)
		if !ok {
			return "", fmt.Errorf("vault: swap %q: expected version %q is not a KV version number, so it cannot be current: %w", loc.dataPath(), expected, provider.ErrConflict)
		}
		cas = n
	}
	v, err := b.write(ctx, loc, cas, data)
	if err != nil {
		return "", err
	}
	return formatVersion(v), nil
}

// write stores data at loc with options.cas = cas and returns the new
// version.
func (b *Backend) write(ctx context.Context, loc location, cas uint64, data map[string]any) (uint64, error) {
	path := loc.dataPath()
	sec, err := b.client.Logical().WriteWithContext(ctx, path, map[string]any{
		"data":    data,
		"options": map[string]any{"cas": cas},
	})
	if err != nil {
		if isCASMismatch(err) {
			return 0, conflict(path, cas, err)
		}
		if statusOf(err) == http.StatusBadRequest {
			// Another 400 may still be a lost race reported in words this
			// code does not know: decide by state, not by text.
			if st, rerr := b.read(ctx, loc); rerr == nil && st.version != cas {
				return 0, conflict(path, cas, err)
			}
		}
		capability := "update"
		if cas == 0 {
			capability = "create"
		}
		return 0, classify(err, "write", path, capability)
	}
	if sec == nil || sec.Data == nil {
		return 0, fmt.Errorf("vault: write %q: %w", path, errNoVersion)
	}
	v, ok := versionOf(sec.Data["version"])
	if !ok || v == 0 {
		return 0, fmt.Errorf("vault: write %q: %w", path, errNoVersion)
	}
	return v, nil
}

func conflict(path string, cas uint64, cause error) error {
	what := fmt.Sprintf("version %d is no longer current", cas)
	if cas == 0 {
		what = "the secret was created meanwhile"
	}
	return provider.NewError(fmt.Sprintf("vault: write %q: %s (another writer won): load it again", path, what), cause, provider.KindConflict)
}

// CheckWrite reports, without writing, whether the token may write key: it
// asks sys/capabilities-self for the secret's data path and needs "update"
// (every write to an existing secret, which is what a refresh does) or
// "root". It returns an error wrapping provider.ErrPermission naming the
// policy rule to add when the capability is missing.
func (b *Backend) CheckWrite(ctx context.Context, key string) error {
	return b.withAuth(ctx, func() error { return b.checkWrite(ctx, key) })
}

func (b *Backend) checkWrite(ctx context.Context, key string) error {
	loc, err := b.locate(ctx, key)
	if err != nil {
		return err
	}
	path := loc.dataPath()
	caps, err := b.client.Sys().CapabilitiesSelfWithContext(ctx, path)
	if err != nil {
		// A 403 here is about sys/capabilities-self itself, which Vault's
		// default policy grants; a token without it needs the rule.
		return classify(err, "check capabilities with", "sys/capabilities-self", "update")
	}
	if slices.Contains(caps, "root") || (slices.Contains(caps, "update") && !slices.Contains(caps, "deny")) {
		return nil
	}
	return fmt.Errorf("vault: the token may not write %q (its capabilities there are %v): the token's policy needs path %q { capabilities = [\"create\", \"read\", \"update\"] }: %w", path, caps, path, provider.ErrPermission)
}
