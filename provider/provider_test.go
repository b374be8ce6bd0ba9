package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/credhelper/credhelper/provider"
)

func TestCredentialProviderFunc(t *testing.T) {
	type ctxKey struct{}
	want := provider.Pair{AuthToken: "k", Generation: 5}
	var p provider.CredentialProvider = provider.CredentialProviderFunc(func(ctx context.Context) (provider.Pair, error) {
		if ctx.Value(ctxKey{}) != "v" {
			return provider.Pair{}, errors.New("context not passed through")
		}
		return want, nil
	})
	got, err := p.Credential(context.WithValue(context.Background(), ctxKey{}, "v"))
	if err != nil || !samePair(got, want) {
		t.Errorf("Credential = %v, %v; want %v, nil", got, err, want)
	}
}

func TestEncodeInvalidExtra(t *testing.T) {
	rec := &provider.Record{Pair: provider.Pair{AuthToken: secretAPIKey, RefreshToken: secretRefresh, ValidUntil: t2026}}
	rec.SetExtra("bad", json.RawMessage(`{not json`))
	out, err := rec.Encode()
	if err == nil {
		t.Fatalf("Encode with an invalid extra = %s, want an error", out)
	}
	checkNoLeak(t, err, secretAPIKey, secretRefresh)
}
