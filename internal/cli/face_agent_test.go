package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
)

// TestFacesThroughAgent shows that every face resolves through a running
// agent: with the stored pair moved away, only the agent can answer.
func TestFacesThroughAgent(t *testing.T) {
	w := newFaceWorld(t, `
[profiles.app]
backend = "file:%DIR%/app.json"
[profiles.app.docker]
server_urls = ["registry.example.com"]
[profiles.app.git]
host = "git.example.com"
[profiles.app.goauth]
url_prefixes = ["https://goproxy.example.com"]
[profiles.app.cargo]
registries = ["internal"]
[profiles.app.kubelet]
match_images = ["registry.example.com"]
[profiles.app.bazel]
hosts = ["cache.example.com"]
[profiles.app.terraform]
hosts = ["app.terraform.io"]
`)
	writeRecord(t, filepath.Join(w.dir, "app.json"), neverPair())
	sockDir := filepath.Join(w.dir, "sock")
	if err := os.Mkdir(sockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(sockDir, "a.sock")
	t.Setenv("CREDHELPER_NO_AGENT", "")
	t.Setenv("CREDHELPER_AGENT_SOCKET", sock)
	env := os.Environ()

	agentCmd, _, agentErr := startBin(t, env, "agent")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not start: %s", agentErr.String())
		}
	}
	if err := os.Rename(filepath.Join(w.dir, "app.json"), filepath.Join(w.dir, "app.away")); err != nil {
		t.Fatal(err)
	}

	c, err := client.Get(client.NewShellProgramFunc(filepath.Join(binDir, dockerHelperName)), "registry.example.com")
	if err != nil || c.Secret != faceToken {
		t.Errorf("docker get through the agent: %v", err)
	}
	r := runBin(t, env, "protocol=https\nhost=git.example.com\n", "git-credential-credhelper", "get")
	if r.code != 0 || !strings.Contains(r.stdout, "password="+faceToken+"\n") {
		t.Errorf("git get through the agent: %+v", r)
	}
	r = runBin(t, env, "", "credhelper", "kubectl", "--profile", "app")
	if r.code != 0 || !strings.Contains(r.stdout, `"token":"`+faceToken+`"`) {
		t.Errorf("kubectl through the agent: %+v", r)
	}
	r = runBin(t, env, "", "credhelper", "env", "--profile", "app")
	if r.code != 0 || !strings.Contains(r.stdout, "export MOMENTO_API_KEY='"+faceToken+"'") {
		t.Errorf("env through the agent: %+v", r)
	}
	r = runBin(t, env, "", "credhelper", "exec", "--profile", "app", "--", "sh", "-c", `printf %s "$MOMENTO_API_KEY"`)
	if r.code != 0 || r.stdout != faceToken {
		t.Errorf("exec through the agent: %+v", r)
	}
	r = runBin(t, env, "", "credhelper", "goauth")
	if r.code != 0 || r.stdout != "https://goproxy.example.com\n\nAuthorization: Bearer "+faceToken+"\n\n" {
		t.Errorf("goauth through the agent: %+v", r)
	}
	r = runBin(t, env, `{"v":1,"registry":{"index-url":"sparse+https://x/","name":"internal"},"kind":"get","operation":"read"}`+"\n", "credhelper", cargoPluginFlag)
	if r.code != 0 || !strings.Contains(r.stdout, `"token":"`+faceToken+`"`) {
		t.Errorf("cargo through the agent: %+v", r)
	}
	r = runBin(t, env, `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"registry.example.com/a"}`, "credhelper", "kubelet")
	if r.code != 0 || !strings.Contains(r.stdout, `"password":"`+faceToken+`"`) {
		t.Errorf("kubelet through the agent: %+v", r)
	}
	r = runBin(t, env, `{"uri":"https://cache.example.com/x"}`, bazelHelperName, "get")
	if r.code != 0 || !strings.Contains(r.stdout, `"Bearer `+faceToken+`"`) {
		t.Errorf("bazel through the agent: %+v", r)
	}
	r = runBin(t, env, "", "terraform-credentials-credhelper", "get", "app.terraform.io")
	if r.code != 0 || r.stdout != `{"token":"`+faceToken+`"}`+"\n" {
		t.Errorf("terraform through the agent: %+v", r)
	}
	// Without the agent the same request fails: the file is gone.
	r = runBin(t, append(env, "CREDHELPER_NO_AGENT=1"), "", "credhelper", "kubectl", "--profile", "app")
	if r.code == 0 {
		t.Error("kubectl succeeded without the agent and without the stored pair: the test proves nothing")
	}

	if err := agentCmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, agentCmd); code != 0 {
		t.Errorf("agent exit %d: %s", code, agentErr.String())
	}
	noFaceSecrets(t, "agent log", agentErr.String())
}
