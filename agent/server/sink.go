package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"text/template"
	"time"

	"github.com/credhelper/credhelper/internal/fsutil"
	"github.com/credhelper/credhelper/protocols/envexec"
	"github.com/credhelper/credhelper/provider"
)

// Sink formats (SinkSpec.Format).
const (
	FormatToken    = "token"
	FormatEnv      = "env"
	FormatJSON     = "json"
	FormatTemplate = "template"
)

// DefaultSinkMode is a sink file's mode unless its spec says otherwise.
const DefaultSinkMode os.FileMode = 0o600

// DefaultCommandTimeout bounds a sink's command unless its spec says
// otherwise.
const DefaultCommandTimeout = 30 * time.Second

// SinkSpec describes one file the agent keeps a profile's auth token in,
// rewritten atomically at start and on every new generation.
type SinkSpec struct {
	// Path is the file. Its directory is created 0700 when missing and
	// must not be writable by group or others.
	Path string
	// Format is FormatToken (default), FormatEnv, FormatJSON or
	// FormatTemplate.
	Format string
	// Template is the text/template source for FormatTemplate, executed
	// over SinkData.
	Template string
	// TemplateName names the template in its errors (the template file's
	// name); default "inline" (the template setting).
	TemplateName string
	// EnvVars names the variables of FormatEnv; default
	// envexec.DefaultVars().
	EnvVars envexec.Vars
	// Mode is the file's permission bits; default DefaultSinkMode.
	Mode os.FileMode
	// Command, when set, runs after each write: an argv list, never
	// passed to a shell. Its output is discarded (it may hold the token).
	Command []string
	// CommandTimeout bounds Command; default DefaultCommandTimeout.
	CommandTimeout time.Duration
	// Remove makes an expired sink disappear instead of being emptied.
	Remove bool
}

// SinkData is what a sink's template sees: the public facts of one pair.
type SinkData struct {
	// Profile is the profile's name.
	Profile string
	// Token is the auth token; the refresh token is never given to sinks.
	Token string
	// Endpoint is the endpoint the token is valid for, when known.
	Endpoint string
	// Expiry is the pair's expiry in RFC 3339 (UTC), empty for a pair
	// that never expires; ExpiryUnix the same in Unix seconds, 0 for never.
	Expiry     string
	ExpiryUnix int64
	// Generation is the pair's generation.
	Generation uint64
}

// sinkJSON is FormatJSON's document.
type sinkJSON struct {
	Token      string `json:"token"`
	Endpoint   string `json:"endpoint,omitempty"`
	Expiry     string `json:"expiry,omitempty"`
	Generation uint64 `json:"generation"`
}

func sinkData(profile string, p provider.Pair) SinkData {
	d := SinkData{Profile: profile, Token: p.AuthToken, Generation: p.Generation}
	d.Endpoint, _ = p.ResolveEndpoint()
	if !p.Never() {
		d.Expiry = p.ValidUntil.UTC().Format(time.RFC3339)
		d.ExpiryUnix = p.ValidUntil.Unix()
	}
	return d
}

// sink is a compiled SinkSpec and what was last done to its file.
type sink struct {
	spec SinkSpec
	tmpl *template.Template

	// Guarded by the keeper's step (one at a time per profile).
	wrote   provider.Pair // the pair in the file; zero when none
	written bool
	failed  bool // the last write failed; retried with the keeper's backoff

	cmdMu      sync.Mutex // guards the fields below
	cmdRunning bool
	cmdPending bool
}

// Check reports what New would refuse in spec: a path that is not
// absolute, a mode that is not permission bits, a template that does not
// parse or that refers to an unknown field.
func (spec SinkSpec) Check() error {
	_, err := compileSink(spec)
	return err
}

// compileSink checks spec and parses its template, executing it once over
// a sample pair so that a reference to an unknown field fails at start,
// not at the first rotation.
func compileSink(spec SinkSpec) (*sink, error) {
	if spec.Path == "" || !filepath.IsAbs(spec.Path) {
		return nil, fmt.Errorf("agent: sink path %q must be absolute", spec.Path)
	}
	if spec.Mode == 0 {
		spec.Mode = DefaultSinkMode
	}
	if spec.Mode&^fs.ModePerm != 0 {
		return nil, fmt.Errorf("agent: sink %s: mode %#o is not permission bits", spec.Path, spec.Mode)
	}
	if spec.CommandTimeout <= 0 {
		spec.CommandTimeout = DefaultCommandTimeout
	}
	if len(spec.Command) > 0 && spec.Command[0] == "" {
		return nil, fmt.Errorf("agent: sink %s: the command's program is empty", spec.Path)
	}
	if err := checkSinkDir(spec.Path); err != nil {
		return nil, err
	}
	s := &sink{spec: spec}
	switch spec.Format {
	case "", FormatToken, FormatJSON:
	case FormatEnv:
		if s.spec.EnvVars == (envexec.Vars{}) {
			s.spec.EnvVars = envexec.DefaultVars()
		}
		if err := s.spec.EnvVars.Validate(); err != nil {
			return nil, fmt.Errorf("agent: sink %s: %w", spec.Path, err)
		}
	case FormatTemplate:
		t, err := template.New(cmp.Or(spec.TemplateName, "inline")).Option("missingkey=error").Parse(spec.Template)
		if err != nil {
			return nil, fmt.Errorf("agent: sink %s: %s", spec.Path, templateProblem(err))
		}
		s.tmpl = t
		sample := SinkData{Profile: "sample", Token: "sample-token", Endpoint: "cell.example.com", Expiry: "2030-01-01T00:00:00Z", ExpiryUnix: 1893456000, Generation: 1}
		if err := t.Execute(&bytes.Buffer{}, sample); err != nil {
			return nil, fmt.Errorf("agent: sink %s: %s (fields: .Profile .Token .Endpoint .Expiry .ExpiryUnix .Generation)", spec.Path, templateProblem(err))
		}
	default:
		return nil, fmt.Errorf("agent: sink %s: format %q: use token, env, json or template", spec.Path, spec.Format)
	}
	return s, nil
}

// templateProblem is a text/template error in the user's words: it
// already starts "template: NAME:LINE:COL:", and the Go type the
// template runs over means nothing to them.
func templateProblem(err error) string {
	return goType.ReplaceAllString(err.Error(), "")
}

// goType is text/template's " in type T" (server.SinkData, string).
var goType = regexp.MustCompile(` in type [\w.*\[\]]+`)

// render formats the pair as the file's content.
func (s *sink) render(d SinkData) ([]byte, error) {
	switch s.spec.Format {
	case "", FormatToken:
		return []byte(d.Token + "\n"), nil
	case FormatJSON:
		b, err := json.Marshal(sinkJSON{Token: d.Token, Endpoint: d.Endpoint, Expiry: d.Expiry, Generation: d.Generation})
		return append(b, '\n'), err
	case FormatEnv:
		p := provider.Pair{AuthToken: d.Token, Endpoint: d.Endpoint}
		if d.ExpiryUnix != 0 {
			p.ValidUntil = time.Unix(d.ExpiryUnix, 0)
		}
		vars, err := s.spec.EnvVars.Values(p)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		err = envexec.Write(&b, envexec.FormatDotenv, vars)
		return b.Bytes(), err
	}
	var b bytes.Buffer
	if err := s.tmpl.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return b.Bytes(), nil
}

// sinkDirRule is what a sink's directory must pass: the local-state trust
// rule (it and every directory above it belong to this user or root, and
// nobody else can write them).
var sinkDirRule = fsutil.Rule{What: "sink directory"}

// writeAtomic replaces path with data: a temporary file in the same
// directory, written, fsynced, given mode and the old file's owner, renamed
// over path, and the directory fsynced. A missing directory is created
// 0700.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	d, err := fsutil.MkdirAll(filepath.Dir(path), sinkDirRule)
	if err != nil {
		return err
	}
	defer d.Close()
	name := filepath.Base(path)
	if fi, err := d.Lstat("."); err == nil && sharedDir(fi) {
		return sharedDirError(d.Path(), fi)
	}
	if fi, err := d.Lstat(name); err == nil {
		switch {
		case fi.IsDir():
			return &fs.PathError{Op: "write sink", Path: path, Err: errors.New("is a directory")}
		case fi.Mode()&fs.ModeSymlink != 0:
			return &fs.PathError{Op: "write sink", Path: path, Err: errors.New("is a symbolic link: point the sink at the file itself")}
		}
	}
	uid, gid, hasOwner, err := fileOwner(path)
	if err != nil {
		return err
	}
	if hasOwner && (uid != os.Geteuid() || gid != os.Getegid()) {
		if err := writeKeepingOwner(path, data, mode, uid, gid); err != nil {
			return err
		}
		return d.Sync()
	}
	return d.WriteFile(name, data, mode)
}

// sharedDirError refuses a sink directory group or others can write,
// even sticky (as /tmp is): another user may have created the sink's name
// first, and the new file would keep their ownership.
func sharedDirError(dir string, fi fs.FileInfo) error {
	return &fsutil.PathError{What: "sink directory", Path: dir,
		Problem: fmt.Sprintf("is writable by group or others (mode %04o), so another user could create or link the sink file first", modeBits(fi.Mode())),
		Fix:     "keep sinks in a directory only you (and root) can write, such as one under $XDG_RUNTIME_DIR or ~/.local/state",
		Err:     fsutil.ErrUntrusted}
}

// checkSinkDir reports, at start and reload, what every write would
// refuse: a sink directory, or one above it, that fails the trust rule or
// that others can write. Missing directories are fine (created 0700).
func checkSinkDir(path string) error {
	dir, err := fsutil.Resolve(filepath.Dir(path), sinkDirRule.What)
	if err != nil {
		return fmt.Errorf("agent: sink %s: %w", path, err)
	}
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() && sharedDir(fi) {
		return fmt.Errorf("agent: sink %s: %w", path, sharedDirError(dir, fi))
	}
	return nil
}

// modeBits is mode as chmod writes it, the sticky bit included (1777).
func modeBits(mode fs.FileMode) uint32 {
	bits := uint32(mode.Perm())
	if mode&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}

// sharedDir reports a directory others than its owner may write.
func sharedDir(fi fs.FileInfo) bool {
	return runtime.GOOS != "windows" && fi.Mode().Perm()&0o022 != 0
}

// removeSink removes path (an expired sink that says remove).
func removeSink(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// runCommand runs the sink's command after a write, on its own goroutine:
// it never blocks a refresh or another profile. While one run is in
// progress a further write queues one more run, so the command always sees
// the newest file; a failure is logged and counted, and the next rotation
// runs it again.
func (s *sink) runCommand(profile string, log *slog.Logger, m *Metrics) {
	if len(s.spec.Command) == 0 {
		return
	}
	s.cmdMu.Lock()
	if s.cmdRunning {
		s.cmdPending = true
		s.cmdMu.Unlock()
		return
	}
	s.cmdRunning = true
	s.cmdMu.Unlock()
	go func() {
		for {
			err := s.execCommand(profile)
			if err != nil {
				log.Warn("agent: sink command failed; it runs again on the next rotation",
					slog.String("sink", s.spec.Path), slog.String("command", s.spec.Command[0]), slog.String("error", err.Error()))
				if m != nil {
					m.sinkCommandFailed(profile)
				}
			} else {
				log.Debug("agent: sink command ran", slog.String("sink", s.spec.Path), slog.String("command", s.spec.Command[0]))
			}
			s.cmdMu.Lock()
			if !s.cmdPending {
				s.cmdRunning = false
				s.cmdMu.Unlock()
				return
			}
			s.cmdPending = false
			s.cmdMu.Unlock()
		}
	}()
}

// execCommand runs the command once with its timeout; the whole process
// group is killed when the timeout ends.
func (s *sink) execCommand(profile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.spec.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.spec.Command[0], s.spec.Command[1:]...)
	cmd.Env = append(os.Environ(), "CREDHELPER_PROFILE="+profile, "CREDHELPER_SINK="+s.spec.Path)
	cmd.WaitDelay = time.Second
	ownProcessGroup(cmd)
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("timed out after %v", s.spec.CommandTimeout)
	}
	return err // "exit status N", "signal: ...", or why it could not start
}
