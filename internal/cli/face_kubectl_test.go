package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	clientauthv1beta1 "k8s.io/client-go/pkg/apis/clientauthentication/v1beta1"
	"k8s.io/client-go/plugin/pkg/client/auth/exec"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/transport"
)

// strictDecode decodes into client-go's own ExecCredential type, refusing
// fields it does not define.
func strictDecode(t *testing.T, data string, into any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("decode %q as %T: %v", data, into, err)
	}
}

func TestKubectlExecCredential(t *testing.T) {
	srv, minted := startDev(t)
	w := newFaceWorld(t, fmt.Sprintf(`
[profiles.k8s]
backend = "file:%%DIR%%/k8s.json"
[profiles.exp]
backend = "file:%%DIR%%/exp.json"
issuer = "dev:%s"
[profiles.broken]
backend = "file:%%DIR%%/missing.json"
`, srv.Addr()))
	writeRecord(t, filepath.Join(w.dir, "k8s.json"), neverPair())
	writeRecord(t, filepath.Join(w.dir, "exp.json"), minted)

	r := runBin(t, w.env, "", "credhelper", "kubectl", "--profile", "k8s")
	var v1 clientauthv1.ExecCredential
	strictDecode(t, r.stdout, &v1)
	if r.code != 0 || v1.APIVersion != "client.authentication.k8s.io/v1" || v1.Kind != "ExecCredential" ||
		v1.Status == nil || v1.Status.Token != faceToken || v1.Status.ExpirationTimestamp != nil {
		t.Errorf("never-expiring profile: exit %d, %+v", r.code, v1.TypeMeta)
	}

	info := func(version string) string {
		return fmt.Sprintf(`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/%s","spec":{"interactive":false}}`, version)
	}
	env := append(append([]string{}, w.env...), "KUBERNETES_EXEC_INFO="+info("v1"))
	r = runBin(t, env, "", "credhelper", "kubectl", "--profile", "exp")
	v1 = clientauthv1.ExecCredential{}
	strictDecode(t, r.stdout, &v1)
	if r.code != 0 || v1.Status == nil || v1.Status.Token != minted.AuthToken || v1.Status.ExpirationTimestamp == nil ||
		!v1.Status.ExpirationTimestamp.Time.Equal(minted.ValidUntil.Add(-time.Minute).Truncate(1e9)) { // min_validity before it expires
		t.Errorf("expiring profile: exit %d, status %+v, want expiry %v", r.code, v1.Status != nil, minted.ValidUntil)
	}

	env = append(append([]string{}, w.env...), "KUBERNETES_EXEC_INFO="+info("v1beta1"))
	r = runBin(t, env, "", "credhelper", "kubectl", "--profile", "exp")
	var beta clientauthv1beta1.ExecCredential
	strictDecode(t, r.stdout, &beta)
	if r.code != 0 || beta.APIVersion != "client.authentication.k8s.io/v1beta1" || beta.Status == nil || beta.Status.Token != minted.AuthToken {
		t.Errorf("v1beta1: exit %d, %+v", r.code, beta.TypeMeta)
	}

	// Errors: stderr and a non-zero exit, nothing on stdout, no secret.
	for _, tc := range []struct{ name, info, profile, want string }{
		{"garbage info", "not json", "k8s", "KUBERNETES_EXEC_INFO"},
		{"v1alpha1", info("v1alpha1"), "k8s", "v1alpha1"},
		{"unusable backend", info("v1"), "broken", "missing.json"},
		{"unknown profile", info("v1"), "nope", "nope"},
	} {
		env := append(append([]string{}, w.env...), "KUBERNETES_EXEC_INFO="+tc.info)
		r := runBin(t, env, "", "credhelper", "kubectl", "--profile", tc.profile)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		last := lines[len(lines)-1]
		if r.code == 0 || r.stdout != "" || !strings.HasPrefix(last, "credhelper: ") || !strings.Contains(last, tc.want) {
			t.Errorf("%s: %+v, want an error line on stderr naming %q", tc.name, r, tc.want)
		}
		noFaceSecrets(t, tc.name, r.stderr)
	}
}

// TestKubectlThroughClientGo drives the binary through client-go's own exec
// authenticator, as kubectl does, against a loopback API server that
// checks the bearer token.
func TestKubectlThroughClientGo(t *testing.T) {
	srv, minted := startDev(t)
	w := newFaceWorld(t, fmt.Sprintf(`
[profiles.exp]
backend = "file:%%DIR%%/exp.json"
issuer = "dev:%s"
[profiles.broken]
backend = "file:%%DIR%%/missing.json"
`, srv.Addr()))
	writeRecord(t, filepath.Join(w.dir, "exp.json"), minted)

	var mu sync.Mutex
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+minted.AuthToken {
			http.Error(rw, "Unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(rw, `{"major":"1","minor":"37"}`)
	}))
	defer api.Close()

	get := func(apiVersion, profile string) (int, error) {
		a, err := exec.GetAuthenticator(&clientcmdapi.ExecConfig{
			APIVersion:      apiVersion,
			Command:         filepath.Join(binDir, "credhelper"),
			Args:            []string{"kubectl", "--profile", profile},
			InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
		}, nil)
		if err != nil {
			return 0, err
		}
		tc := &transport.Config{}
		if err := a.UpdateTransportConfig(tc); err != nil {
			return 0, err
		}
		rt, err := transport.New(tc)
		if err != nil {
			return 0, err
		}
		resp, err := (&http.Client{Transport: rt}).Get(api.URL + "/version")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, nil
	}
	stderr := captureStderr(t, func() {
		for _, v := range []string{"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"} {
			code, err := get(v, "exp")
			if err != nil || code != http.StatusOK {
				t.Errorf("%s through client-go: %d, %v", v, code, err)
			}
		}
		code, err := get("client.authentication.k8s.io/v1", "broken")
		if err == nil {
			t.Errorf("an unusable backend gave client-go a credential (status %d)", code)
		} else {
			noFaceSecrets(t, "client-go error", err.Error())
		}
	})
	noFaceSecrets(t, "plugin stderr", stderr)
	if !strings.Contains(stderr, "missing.json") {
		t.Errorf("the plugin's stderr %q does not say what failed", stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || !bytes.Equal([]byte(seen[0]), []byte("Bearer "+minted.AuthToken)) {
		t.Errorf("API server saw %d requests; first Authorization matches: %v", len(seen), len(seen) > 0 && seen[0] == "Bearer "+minted.AuthToken)
	}
}
