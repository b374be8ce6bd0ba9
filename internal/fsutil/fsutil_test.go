//go:build unix

package fsutil_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/internal/fsutil"
)

// otherUID owns what "another user" planted in these tests; no account
// needs to exist for it.
const otherUID = 4242

// needRoot fails the test (never skips) when it cannot chown files to
// another user.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test plants files owned by another user and must run as root (CI runs as root)")
	}
}

// private returns a fresh directory only the current user can use.
func private(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func write(t *testing.T, path string, data string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func wantRefusal(t *testing.T, err error, kind error, parts ...string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %v", err, kind)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

var credRule = fsutil.Rule{What: "credential file", Private: true}

func TestResolveFollowsLinksToTheTarget(t *testing.T) {
	d := private(t)
	target := filepath.Join(d, "real", "cred.json")
	if err := os.Mkdir(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, target, "x", 0o600)
	if err := os.Symlink("real/cred.json", filepath.Join(d, "hop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(d, "hop"), filepath.Join(d, "link.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(d, "real"), filepath.Join(d, "dirlink")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{target, filepath.Join(d, "link.json"), filepath.Join(d, "dirlink", "cred.json"), filepath.Join(d, "dirlink", "..", "real", "cred.json")} {
		got, err := fsutil.Resolve(p, "credential file")
		if err != nil {
			t.Fatalf("Resolve(%s): %v", p, err)
		}
		if got != target {
			t.Errorf("Resolve(%s) = %s, want %s", p, got, target)
		}
	}
	// A missing file resolves to where it would be created.
	got, err := fsutil.Resolve(filepath.Join(d, "dirlink", "new", "cred.json"), "credential file")
	if err != nil || got != filepath.Join(d, "real", "new", "cred.json") {
		t.Errorf("Resolve of a missing file = %s, %v", got, err)
	}
	// A write through the link updates the target and keeps the link.
	dir, name, err := fsutil.OpenParent(filepath.Join(d, "link.json"), credRule)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if err := dir.WriteFile(name, []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "y" {
		t.Errorf("target holds %q after a write through the link", b)
	}
	if fi, err := os.Lstat(filepath.Join(d, "link.json")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
}

func TestLinkLoop(t *testing.T) {
	d := private(t)
	a, b := filepath.Join(d, "a"), filepath.Join(d, "b")
	if err := os.Symlink(b, a); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(a, b); err != nil {
		t.Fatal(err)
	}
	_, err := fsutil.Resolve(a, "config file")
	wantRefusal(t, err, fsutil.ErrUntrusted, "symbolic links")
}

func TestDirectoryRule(t *testing.T) {
	needRoot(t)
	base := private(t)
	tests := []struct {
		name  string
		mode  fs.FileMode
		owner int
		want  error // nil: trusted
		says  []string
	}{
		{"ours 0700", 0o700, -1, nil, nil},
		{"ours 0755", 0o755, -1, nil, nil},
		{"root 0755", 0o755, 0, nil, nil},
		{"sticky shared, root's", 0o777 | fs.ModeSticky, 0, nil, nil},
		{"world-writable", 0o777, -1, fsutil.ErrUntrusted, []string{"writable by group or others", "mode 0777", "chmod go-w"}},
		{"group-writable", 0o770, -1, fsutil.ErrUntrusted, []string{"mode 0770", "chmod go-w"}},
		{"another user's, 0755", 0o755, otherUID, fsutil.ErrUntrusted, []string{"belongs to uid 4242", "neither you"}},
		{"another user's sticky", 0o777 | fs.ModeSticky, otherUID, fsutil.ErrUntrusted, []string{"belongs to uid 4242"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(dir, "cred.json")
			write(t, f, "{}", 0o600)
			if tt.owner >= 0 {
				if err := os.Chown(dir, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := fsutil.ReadFile(f, credRule)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ReadFile: %v", err)
				}
				return
			}
			wantRefusal(t, err, tt.want, append(tt.says, dir)...)
			// A directory further up is held to the same rule.
			_, err = fsutil.ReadFile(filepath.Join(dir, "sub", "..", "cred.json"), credRule)
			if !errors.Is(err, tt.want) {
				t.Errorf("through a path below it: %v", err)
			}
		})
	}
}

func TestFileRule(t *testing.T) {
	needRoot(t)
	d := private(t)
	tests := []struct {
		name  string
		mode  fs.FileMode
		owner int
		rule  fsutil.Rule
		want  error
		says  []string
	}{
		{"private 0600", 0o600, -1, credRule, nil, nil},
		{"root's 0600", 0o600, 0, credRule, nil, nil},
		{"readable by others", 0o644, -1, credRule, fsutil.ErrUntrusted, []string{"mode 0644", "chmod 600"}},
		{"readable by group", 0o640, -1, credRule, fsutil.ErrUntrusted, []string{"chmod 600"}},
		{"another user's 0600", 0o600, otherUID, credRule, fsutil.ErrUntrusted, []string{"belongs to uid 4242"}},
		{"config 0644", 0o644, -1, fsutil.Rule{What: "config file"}, nil, nil},
		{"config 0666", 0o666, -1, fsutil.Rule{What: "config file"}, fsutil.ErrUntrusted, []string{"writable by group or others", "chmod go-w"}},
		{"journal entry of root", 0o600, 0, fsutil.Rule{What: "journal entry", Private: true, Mine: true}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(d, strings.ReplaceAll(tt.name, " ", "_"))
			write(t, f, "{}", tt.mode)
			if tt.owner >= 0 {
				if err := os.Chown(f, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			got, err := fsutil.ReadFile(f, tt.rule)
			if tt.want == nil {
				if err != nil || string(got) != "{}" {
					t.Fatalf("ReadFile = %q, %v", got, err)
				}
				return
			}
			wantRefusal(t, err, tt.want, append(tt.says, f)...)
			if strings.Contains(err.Error(), "{}") {
				t.Errorf("the refusal carries the file's content: %v", err)
			}
		})
	}
}

// TestLinksPlantedByOthers: a link in a sticky shared directory that
// another user owns is refused, wherever it points; one the user owns is
// followed.
func TestLinksPlantedByOthers(t *testing.T) {
	needRoot(t)
	shared := filepath.Join(private(t), "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(private(t), "cred.json")
	write(t, target, "{}", 0o600)
	planted := filepath.Join(shared, "planted.json")
	if err := os.Symlink(target, planted); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(planted, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	_, err := fsutil.ReadFile(planted, credRule)
	wantRefusal(t, err, fsutil.ErrUntrusted, "symbolic link", "belongs to uid 4242", planted)
	mine := filepath.Join(shared, "mine.json")
	if err := os.Symlink(target, mine); err != nil {
		t.Fatal(err)
	}
	if _, err := fsutil.ReadFile(mine, credRule); err != nil {
		t.Errorf("a link of the user's own in a sticky directory: %v", err)
	}
}

// TestNoHangsNoGrowth: every kind of file that is not a regular one, and
// an oversized one, is refused at once without reading it.
func TestNoHangsNoGrowth(t *testing.T) {
	d := private(t)
	fifo := filepath.Join(d, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(d, "big")
	f, err := os.OpenFile(big, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil { // sparse: a terabyte that costs nothing
		t.Fatal(err)
	}
	f.Close()
	zero := filepath.Join(d, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       error
		says       string
	}{
		{"fifo", fifo, fsutil.ErrNotRegular, "named pipe (FIFO)"},
		{"/dev/zero", "/dev/zero", fsutil.ErrNotRegular, "character device"},
		{"link to /dev/zero", zero, fsutil.ErrNotRegular, "character device"},
		{"directory", d, fsutil.ErrNotRegular, "a directory"},
		{"terabyte", big, fsutil.ErrTooLarge, "1099511627776 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := fsutil.ReadFile(tt.path, fsutil.Rule{What: "config file"})
			if el := time.Since(start); el > time.Second {
				t.Errorf("took %v", el)
			}
			wantRefusal(t, err, tt.want, tt.says)
		})
	}
	// A lock file that is a FIFO, a link or a directory is refused too.
	dir, err := fsutil.OpenDir(d, fsutil.Rule{What: "credential directory"})
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if err := os.Symlink("/etc/credhelper-test-never", filepath.Join(d, "link.lock")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(d, "dir.lock"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, says := range map[string]string{"fifo": "named pipe", "link.lock": "symbolic link", "dir.lock": "a directory"} {
		_, _, err := dir.TryLock(name)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("TryLock(%s) = %v, want a refusal naming %q", name, err, says)
		}
	}
	if _, err := os.Lstat("/etc/credhelper-test-never"); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a lock through a planted link created its target")
	}
}

func TestLockExcludesAndSurvivesRecreation(t *testing.T) {
	d := private(t)
	dir, err := fsutil.OpenDir(d, fsutil.Rule{})
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	l, ok, err := dir.TryLock("x.lock")
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if _, ok, err := dir.TryLock("x.lock"); err != nil || ok {
		t.Fatalf("second TryLock while held = %v, %v, want busy", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := dir.Lock(ctx, "x.lock", time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while held = %v, want the deadline", err)
	}
	// Many goroutines take turns; each sees the counter unchanged by others.
	l.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				l, err := dir.Lock(context.Background(), "x.lock", time.Millisecond)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				if inside != 1 {
					t.Error("two holders at once")
				}
				mu.Unlock()
				mu.Lock()
				inside--
				mu.Unlock()
				l.Unlock()
			}
		}()
	}
	wg.Wait()
	fi, err := os.Stat(filepath.Join(d, "x.lock"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v %v, want mode 0600", fi, err)
	}
}

func TestCreateFileIsExclusive(t *testing.T) {
	dir, err := fsutil.OpenDir(private(t), fsutil.Rule{})
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if err := dir.CreateFile("key", []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dir.CreateFile("key", []byte("second"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CreateFile = %v, want ErrExist", err)
	}
	b, err := dir.ReadFile("key", fsutil.Rule{Private: true, Mine: true})
	if err != nil || string(b) != "first" {
		t.Fatalf("key = %q, %v", b, err)
	}
	names, _ := dir.Names()
	if len(names) != 1 {
		t.Errorf("left behind: %v", names)
	}
}

func TestMkdirAllCreatesPrivateDirectories(t *testing.T) {
	d := private(t)
	p := filepath.Join(d, "a", "b", "c")
	dir, err := fsutil.MkdirAll(p, fsutil.Rule{What: "journal directory", Mine: true})
	if err != nil {
		t.Fatal(err)
	}
	dir.Close()
	for _, q := range []string{filepath.Join(d, "a"), filepath.Join(d, "a", "b"), p} {
		if fi, err := os.Stat(q); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want 0700", q, fi, err)
		}
	}
	if err := os.Chmod(p, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err = fsutil.MkdirAll(p, fsutil.Rule{What: "journal directory", Mine: true})
	wantRefusal(t, err, fsutil.ErrUntrusted, "journal directory "+p, "mode 0777")
	if err := os.Chmod(p, 0o750); err != nil {
		t.Fatal(err)
	}
	_, err = fsutil.MkdirAll(p, fsutil.Rule{What: "socket directory", Mine: true, Private: true})
	wantRefusal(t, err, fsutil.ErrUntrusted, "chmod 700")
}

func TestRelativeXDGIgnored(t *testing.T) {
	home := private(t)
	t.Setenv("HOME", home)
	for _, tt := range []struct {
		env, fallback string
		get           func() string
	}{
		{"XDG_CONFIG_HOME", filepath.Join(home, ".config"), fsutil.ConfigHome},
		{"XDG_STATE_HOME", filepath.Join(home, ".local", "state"), fsutil.StateHome},
		{"XDG_RUNTIME_DIR", "", fsutil.RuntimeDir},
	} {
		t.Setenv(tt.env, "relative/dir")
		if got := tt.get(); got != tt.fallback {
			t.Errorf("with %s relative: %q, want %q", tt.env, got, tt.fallback)
		}
		t.Setenv(tt.env, "/abs/dir")
		if got := tt.get(); got != "/abs/dir" {
			t.Errorf("with %s absolute: %q", tt.env, got)
		}
	}
}

func TestOpenAppend(t *testing.T) {
	d := private(t)
	dir, err := fsutil.OpenDir(d, fsutil.Rule{})
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	rule := fsutil.Rule{What: "log", Private: true, Mine: true, MaxSize: 4}
	for _, line := range []string{"one\n", "two\n"} {
		f, err := dir.OpenAppend("log", 0o600, rule)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(line)
		f.Close()
	}
	if b, _ := os.ReadFile(filepath.Join(d, "log")); string(b) != "one\ntwo\n" {
		t.Errorf("log = %q", b)
	}
	os.Symlink("/etc/passwd", filepath.Join(d, "link"))
	syscall.Mkfifo(filepath.Join(d, "fifo"), 0o600)
	write(t, filepath.Join(d, "open"), "", 0o644)
	for name, says := range map[string]string{"link": "symbolic link", "fifo": "named pipe", "open": "chmod 600"} {
		if _, err := dir.OpenAppend(name, 0o600, rule); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("OpenAppend(%s) = %v, want a refusal naming %q", name, err, says)
		}
	}
}
