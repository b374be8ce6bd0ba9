package vault

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
)

// Options configure a Backend. Settings left empty keep what the client (New)
// or the standard VAULT_* environment (NewFromEnv) already has.
type Options struct {
	// Address is Vault's URL, such as "https://vault.example.com:8200".
	Address string
	// Token is the Vault token to use. It excludes TokenFile and AppRole.
	Token string
	// TokenFile names a file that holds the Vault token, such as a Vault
	// Agent token sink. It is read once, by the constructor.
	TokenFile string
	// Namespace is the Vault Enterprise namespace to work in.
	Namespace string
	// AppRole, when its RoleID is set, logs in with the AppRole auth method
	// instead of using a token.
	AppRole AppRole
	// Logger receives diagnostics (token renewals, logins); nil discards
	// them. Nothing secret is ever logged.
	Logger *slog.Logger
}

// AppRole holds the credentials for a login with Vault's AppRole auth
// method. Exactly one of SecretID and SecretIDFile must be set.
type AppRole struct {
	// RoleID is the role's role_id.
	RoleID string
	// SecretID is a secret_id issued for the role.
	SecretID string
	// SecretIDFile names a file holding the secret_id; it is read at each
	// login, so a deployment tool can replace it.
	SecretIDFile string
	// MountPath is where the AppRole auth method is enabled; default
	// "approle".
	MountPath string
}

func (o *Options) useAppRole() bool { return o.AppRole.RoleID != "" }

// validate rejects contradictory or malformed options up front.
func (o *Options) validate() error {
	if o.Address != "" {
		u, err := url.Parse(o.Address)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("vault: Address must be an http:// or https:// URL such as https://vault.example.com:8200")
		}
	}
	if o.Token != "" && o.TokenFile != "" {
		return errors.New("vault: set Token or TokenFile, not both")
	}
	a := o.AppRole
	if a.RoleID == "" {
		if a.SecretID != "" || a.SecretIDFile != "" || a.MountPath != "" {
			return errors.New("vault: AppRole settings given without AppRole.RoleID: set the role's role_id")
		}
		return nil
	}
	if o.Token != "" || o.TokenFile != "" {
		return errors.New("vault: set a token or AppRole credentials, not both")
	}
	if (a.SecretID == "") == (a.SecretIDFile == "") {
		return errors.New("vault: AppRole needs exactly one of SecretID and SecretIDFile")
	}
	if strings.Trim(a.MountPath, "/") != a.MountPath {
		return fmt.Errorf("vault: AppRole.MountPath %q must not start or end with a slash", a.MountPath)
	}
	return nil
}

// readTokenFile returns the token held in path, without surrounding space.
func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("vault: read TokenFile: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("vault: TokenFile %q is empty: write a Vault token into it", path)
	}
	return tok, nil
}
