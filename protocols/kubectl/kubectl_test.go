package kubectl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/credhelper/credhelper/provider"
)

const secret = "kube-secret-V9-distinctive"

func src(p provider.Pair, err error) provider.CredentialProvider {
	return provider.CredentialProviderFunc(func(context.Context) (provider.Pair, error) { return p, err })
}

func TestServe(t *testing.T) {
	exp := time.Date(2031, 2, 3, 4, 5, 6, 0, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name, info string
		pair       provider.Pair
		want       string
	}{
		{"no info", "", provider.Pair{AuthToken: secret, RefreshToken: "r", ValidUntil: exp},
			`{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"` + secret + `","expirationTimestamp":"2031-02-03T03:04:06Z"}}`},
		{"v1", `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`, provider.Pair{AuthToken: secret},
			`{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"` + secret + `"}}`},
		{"v1beta1", `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}`, provider.Pair{AuthToken: secret},
			`{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"` + secret + `"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Serve(context.Background(), src(tc.pair, nil), tc.info, &out); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out.String()); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestServeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, info string
		err        error
	}{
		{"garbage", "{{{", nil},
		{"wrong kind", `{"kind":"Pod","apiVersion":"client.authentication.k8s.io/v1"}`, nil},
		{"v1alpha1", `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1alpha1"}`, nil},
		{"no version", `{"kind":"ExecCredential"}`, nil},
		{"oversized", `{"kind":"ExecCredential","x":"` + strings.Repeat("a", maxExecInfo) + `"}`, nil},
		{"resolver", "", provider.ErrLineageBroken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			called := false
			s := provider.CredentialProviderFunc(func(context.Context) (provider.Pair, error) {
				called = true
				return provider.Pair{AuthToken: secret}, tc.err
			})
			err := Serve(context.Background(), s, tc.info, &out)
			if err == nil || out.Len() != 0 {
				t.Fatalf("got %q, %v", out.String(), err)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("got %v, want %v", err, tc.err)
			}
			if tc.err == nil && called {
				t.Error("resolved a credential for a request it refuses")
			}
			if strings.Contains(err.Error(), secret) {
				t.Error("error leaks the token")
			}
		})
	}
}

func TestWriteIsExecCredential(t *testing.T) {
	var out bytes.Buffer
	if err := Write(&out, APIVersionV1, provider.Pair{AuthToken: secret}); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["kind"] != "ExecCredential" {
		t.Fatalf("%s: %v", out.String(), err)
	}
	if err := Write(&out, APIVersionV1, provider.Pair{}); err == nil {
		t.Error("empty token written")
	}
}
