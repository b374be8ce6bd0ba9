package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/credhelper/credhelper/provider"
)

// location is a key resolved to its KV v2 mount and the secret's path in it.
type location struct {
	mount  string // with a trailing slash, as Vault reports it: "team/kv/"
	secret string // the rest of the key: "prod/momento"
}

func (l location) dataPath() string { return l.mount + "data/" + l.secret }

// splitKey checks that key has the form MOUNT/PATH with no empty, "." or
// ".." segment and no control characters.
func splitKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("vault: key %q %s: use MOUNT/PATH, the KV v2 mount followed by the secret's path, such as secret/credhelper/momento", key, why)
	}
	if key == "" {
		return bad("is empty")
	}
	for _, r := range key {
		if unicode.IsControl(r) || r == '?' || r == '#' {
			return bad("contains a control character, '?' or '#'")
		}
	}
	segs := strings.Split(key, "/")
	if len(segs) < 2 {
		return bad("names no secret inside a mount")
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return bad("has an empty, \".\" or \"..\" path segment")
		}
	}
	return nil
}

// locate checks key and resolves it to its mount, asking Vault the first time a mount is
// met. Vault refuses a mount nested in another, so a cached mount that
// prefixes the key is the key's mount.
func (b *Backend) locate(ctx context.Context, key string) (location, error) {
	if err := splitKey(key); err != nil {
		return location{}, err
	}
	b.mu.Lock()
	for m := range b.mounts {
		if strings.HasPrefix(key, m) {
			b.mu.Unlock()
			return location{mount: m, secret: key[len(m):]}, nil
		}
	}
	b.mu.Unlock()

	m, err := b.lookupMount(ctx, key)
	if err != nil {
		return location{}, err
	}
	if !strings.HasPrefix(key, m) || len(key) == len(m) {
		return location{}, fmt.Errorf("vault: key %q names the mount %q itself, not a secret in it: append the secret's path", key, m)
	}
	b.mu.Lock()
	b.mounts[m] = struct{}{}
	b.mu.Unlock()
	return location{mount: m, secret: key[len(m):]}, nil
}

// lookupMount asks sys/internal/ui/mounts which engine serves key, as the
// vault CLI does, and accepts only KV version 2. Vault answers this path
// for any token that has some capability under the mount, with no policy
// rule of its own.
func (b *Backend) lookupMount(ctx context.Context, key string) (string, error) {
	path := "sys/internal/ui/mounts/" + key
	sec, err := b.client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		if statusOf(err) == http.StatusForbidden {
			// Vault answers 403 both for no mount and for no access, so
			// that mounts cannot be discovered by probing.
			return "", provider.NewError(fmt.Sprintf("vault: no secrets engine found for key %q, or the token's policies grant nothing under it: check the key's mount (vault secrets list) and grant the policy in the credhelper README", key), err, provider.KindPermission)
		}
		return "", classify(err, "look up the mount of", key, "read")
	}
	if sec == nil || sec.Data == nil {
		return "", fmt.Errorf("vault: Vault returned no mount information for key %q: check the key's mount (vault secrets list)", key)
	}
	mount, _ := sec.Data["path"].(string)
	typ, _ := sec.Data["type"].(string)
	var version string
	if opts, ok := sec.Data["options"].(map[string]any); ok {
		version, _ = opts["version"].(string)
	}
	if mount == "" || !strings.HasSuffix(mount, "/") {
		return "", fmt.Errorf("vault: Vault returned a malformed mount path for key %q", key)
	}
	switch {
	case (typ == "kv" || typ == "generic") && version != "2":
		return "", provider.NewError(fmt.Sprintf("vault: mount %q is a KV version 1 engine, which keeps no versions to compare-and-swap: use a KV version 2 mount (vault secrets enable -version=2 -path=NAME kv) or upgrade this one (vault kv enable-versioning %s)", mount, strings.TrimSuffix(mount, "/")), nil, provider.KindUnsupported)
	case typ != "kv":
		return "", provider.NewError(fmt.Sprintf("vault: mount %q is a %q secrets engine, not KV version 2: point the key at a KV v2 mount", mount, typ), nil, provider.KindUnsupported)
	}
	return mount, nil
}

// errNoVersion reports that a response lacked the version number.
var errNoVersion = errors.New("vault: KV v2 response has no metadata version: is the mount really KV version 2?")
