package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/provider"
)

const faceConfig = `
[profiles.default]
backend = "file:/nonexistent"
[profiles.default.goauth]
url_prefixes = ["https://goproxy.example.com"]
[profiles.default.cargo]
registries = ["internal"]
[profiles.default.kubelet]
match_images = ["registry.example.com"]
[profiles.default.bazel]
hosts = ["cache.example.com"]
[profiles.default.terraform]
hosts = ["app.terraform.io"]
[profiles.other]
backend = "file:/nonexistent"
`

// startFaceAgent serves the named profiles for the config faceConfig.
func startFaceAgent(t *testing.T, serve ...string) {
	t.Helper()
	startAgentWith(t, faceConfig, provider.Pair{AuthToken: "front-face-token"}, serve...)
}

var faceCalls = []struct {
	name  string
	args  []string
	stdin string
	want  string
}{
	{"goauth", []string{"credhelper", "goauth"}, "", "https://goproxy.example.com\n\nAuthorization: Bearer front-face-token\n\n"},
	{"cargo", []string{"credhelper", "--cargo-plugin"}, `{"v":1,"registry":{"index-url":"x","name":"internal"},"kind":"get","operation":"read"}` + "\n",
		`{"v":[1]}` + "\n" + `{"Ok":{"kind":"get","token":"front-face-token","cache":"session","operation_independent":true}}` + "\n"},
	{"kubelet", []string{"/usr/libexec/kubelet-plugins/credhelper", "kubelet"}, `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"registry.example.com/a"}`,
		`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","auth":{"registry.example.com":{"username":"credhelper","password":"front-face-token"}}}` + "\n"},
	{"bazel", []string{"/usr/local/bin/credhelper-bazel", "get"}, `{"uri":"https://cache.example.com/ac/1"}`, `{"headers":{"Authorization":["Bearer front-face-token"]}}` + "\n"},
	{"terraform", []string{"terraform-credentials-credhelper", "get", "app.terraform.io"}, "", `{"token":"front-face-token"}` + "\n"},
	{"terraform, unserved host", []string{"terraform-credentials-credhelper", "get", "other.example.com"}, "", "{}\n"},
}

func TestFastFaceAnswersFromTheAgent(t *testing.T) {
	startFaceAgent(t, "default", "other")
	for _, tc := range faceCalls {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code, ok := fastFace(tc.args, strings.NewReader(tc.stdin), &out, &errb)
			if !ok || code != 0 || out.String() != tc.want || errb.Len() != 0 {
				t.Errorf("fastFace(%q) = %d, %v, out %q, err %q; want %q", tc.args, code, ok, out.String(), errb.String(), tc.want)
			}
		})
	}
	// A malformed request is answered as credhelper-full would: one line
	// on stderr, exit 1.
	var out, errb bytes.Buffer
	code, ok := fastFace([]string{"credhelper-bazel", "get"}, strings.NewReader("garbage"), &out, &errb)
	if !ok || code != 1 || out.Len() != 0 || !strings.HasPrefix(errb.String(), "credhelper: bazel: malformed request") {
		t.Errorf("bad input: %d, %v, out %q, err %q", code, ok, out.String(), errb.String())
	}
}

func TestFastFaceDeclines(t *testing.T) {
	tests := []struct {
		name  string
		serve []string
		args  []string
		env   map[string]string
	}{
		{"the agent lacks a profile", []string{"other"}, []string{"credhelper", "goauth"}, nil},
		{"goauth's 4xx re-run", []string{"default"}, []string{"credhelper", "goauth", "https://goproxy.example.com/x"}, nil},
		{"terraform store", []string{"default"}, []string{"terraform-credentials-credhelper", "store", "app.terraform.io"}, nil},
		{"a flag", []string{"default"}, []string{"credhelper", "kubelet", "--log-level", "debug"}, nil},
		{"agent disabled", []string{"default"}, []string{"credhelper", "goauth"}, map[string]string{"CREDHELPER_NO_AGENT": "1"}},
		{"a backend from the environment", []string{"default"}, []string{"credhelper", "goauth"}, map[string]string{"CREDHELPER_BACKEND": "file:x"}},
		{"another config file", []string{"default"}, []string{"credhelper", "goauth"}, map[string]string{"CREDHELPER_CONFIG": "/nonexistent/config.toml"}},
		{"no agent", []string{"default"}, []string{"credhelper", "goauth"}, map[string]string{agent.SocketEnv: "/nonexistent/agent.sock"}},
		{"docker", []string{"default"}, []string{"docker-credential-credhelper", "get"}, nil},
		{"get", []string{"default"}, []string{"credhelper", "get"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			startFaceAgent(t, tt.serve...)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			in := strings.NewReader("request")
			var out, errb bytes.Buffer
			if code, ok := fastFace(tt.args, in, &out, &errb); ok {
				t.Fatalf("fastFace(%q) answered %d, %q; it must leave this to credhelper-full", tt.args, code, out.String())
			}
			if in.Len() != len("request") || out.Len() != 0 || errb.Len() != 0 {
				t.Errorf("it declined after reading or writing: %d bytes left, out %q, err %q", in.Len(), out.String(), errb.String())
			}
		})
	}
}

// TestFrontAnswersFacesWithoutFull runs the built front as the tools do,
// with no credhelper-full to fall back to.
func TestFrontAnswersFacesWithoutFull(t *testing.T) {
	dir := t.TempDir()
	front := filepath.Join(dir, "credhelper")
	if out, err := exec.Command("go", "build", "-o", front, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, l := range []string{"credhelper-bazel", "terraform-credentials-credhelper"} {
		if err := os.Symlink("credhelper", filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	startFaceAgent(t, "default", "other")
	t.Setenv("CREDHELPER_FULL", filepath.Join(dir, "missing-full"))
	for _, tc := range faceCalls {
		cmd := exec.Command(filepath.Join(dir, filepath.Base(tc.args[0])), tc.args[1:]...)
		cmd.Stdin = strings.NewReader(tc.stdin)
		out, err := cmd.Output()
		if err != nil || string(out) != tc.want {
			t.Errorf("%s: %q, %v", tc.name, out, err)
		}
	}
}
