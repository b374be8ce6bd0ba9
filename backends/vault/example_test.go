package vault_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/credhelper/credhelper/backends/vault"
	"github.com/credhelper/credhelper/provider"
)

// The backend reads VAULT_ADDR, VAULT_TOKEN and the other standard VAULT_*
// variables; options override them.
func ExampleNewFromEnv() {
	b, err := vault.NewFromEnv()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	e, err := b.Load(context.Background(), "secret/credhelper/momento")
	switch {
	case errors.Is(err, provider.ErrNotFound):
		fmt.Println("no credential stored yet")
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println("version", e.Version)
	}
}

// With AppRole, the backend logs in on first use and keeps its token
// renewed until Close.
func ExampleNewFromEnv_appRole() {
	b, err := vault.NewFromEnv(func(o *vault.Options) {
		o.AppRole = vault.AppRole{
			RoleID:       "0a1b2c3d-role-id",
			SecretIDFile: "/run/secrets/credhelper-secret-id",
		}
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	if err := b.CheckWrite(context.Background(), "secret/credhelper/momento"); errors.Is(err, provider.ErrPermission) {
		fmt.Println(err)
	}
}
