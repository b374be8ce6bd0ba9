package testexec

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildCredhelper builds the credhelper front and credhelper-full into dir
// side by side, as make install lays them out, with the
// docker-credential-credhelper, git-credential-credhelper, credhelper-bazel
// and terraform-credentials-credhelper links to the front; extra adds more binaries, name to package path within the module
// (e.g. "fileplugin": "examples/fileplugin").
func BuildCredhelper(dir string, extra map[string]string) error {
	pkgs := map[string]string{"credhelper": "cmd/credhelper", "credhelper-full": "cmd/credhelper-full"}
	for name, pkg := range extra {
		pkgs[name] = pkg
	}
	for name, pkg := range pkgs {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, name), "github.com/credhelper/credhelper/"+pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build ships them
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./%s: %v\n%s", pkg, err, out)
		}
	}
	for _, link := range []string{"docker-credential-credhelper", "git-credential-credhelper", "credhelper-bazel", "terraform-credentials-credhelper"} {
		if err := os.Symlink("credhelper", filepath.Join(dir, link)); err != nil {
			return err
		}
	}
	return nil
}
