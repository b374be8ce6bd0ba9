package file

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/credhelper/credhelper/internal/fsutil"
	"github.com/credhelper/credhelper/provider"
)

// maxFileSize bounds what Load reads; records are far smaller.
const maxFileSize = 1 << 20

// Options configure a Backend.
type Options struct {
	// Dir, when set, resolves relative keys against it. Absolute keys are
	// used as they are.
	Dir string
	// Logger receives diagnostics; nil is silent.
	Logger *slog.Logger
	// LockPoll is the first interval between attempts to take a busy lock;
	// it doubles up to 50ms. Default 1ms.
	LockPoll time.Duration
}

// Backend stores each key as a file. It is safe for concurrent use.
type Backend struct {
	opts Options
}

var _ provider.Backend = (*Backend)(nil)
var _ provider.WriteChecker = (*Backend)(nil)

// New returns a file Backend.
func New(optFns ...func(*Options)) (*Backend, error) {
	o := Options{LockPoll: time.Millisecond}
	for _, fn := range optFns {
		fn(&o)
	}
	if o.LockPoll <= 0 {
		return nil, errors.New("file: LockPoll must be positive")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Backend{opts: o}, nil
}

func (b *Backend) path(key string) (string, error) {
	if key == "" {
		return "", errors.New("file: empty key: give the credential file's path")
	}
	if !filepath.IsAbs(key) && b.opts.Dir != "" {
		key = filepath.Join(b.opts.Dir, key)
	}
	return filepath.Clean(key), nil
}

// versionOf is the content hash that serves as a file's version.
func versionOf(data []byte) provider.Version {
	sum := sha256.Sum256(data)
	return provider.Version("sha256:" + hex.EncodeToString(sum[:16]))
}

// Load reads the credential file named by key.
func (b *Backend) Load(ctx context.Context, key string) (provider.Entry, error) {
	if err := ctx.Err(); err != nil {
		return provider.Entry{}, ctxError(err)
	}
	p, err := b.path(key)
	if err != nil {
		return provider.Entry{}, err
	}
	data, err := fsutil.ReadFile(p, credRule)
	if err != nil {
		return provider.Entry{}, fileError(p, err)
	}
	return provider.Entry{Value: data, Version: versionOf(data)}, nil
}

// credRule is what a credential file must be: a regular file of ours (or
// root's) that nobody else can read, no larger than any record.
var credRule = fsutil.Rule{What: "credential file", Private: true, MaxSize: maxFileSize}

// dirRule is what the directory holding a credential file must be.
var dirRule = fsutil.Rule{What: "credential directory"}

// ctxError reports a caller's expired or canceled context as a transient
// failure, as the other backends do.
func ctxError(err error) error {
	return provider.Transient(fmt.Errorf("file: %w", err))
}

// fileError gives an error of fsutil or the OS about p its provider kind.
func fileError(p string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("file: no credential at %s: %w", p, provider.ErrNotFound)
	case errors.Is(err, fsutil.ErrUntrusted):
		return fmt.Errorf("file: %w: %w", err, provider.ErrPermission)
	case errors.Is(err, fsutil.ErrNotRegular), errors.Is(err, fsutil.ErrTooLarge):
		return fmt.Errorf("file: %w: %w", err, provider.ErrInvalidRecord)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("file: %s: permission denied: check the owner and mode of the file and its directory: %w", p, provider.ErrPermission)
	}
	return fmt.Errorf("file: %s: %w", p, err)
}

// CompareAndSwap replaces the file's content if its version is expected.
// A key that is a symbolic link updates the file the link names.
func (b *Backend) CompareAndSwap(ctx context.Context, key string, expected provider.Version, value []byte) (provider.Version, error) {
	if err := ctx.Err(); err != nil {
		return "", ctxError(err)
	}
	p, err := b.path(key)
	if err != nil {
		return "", err
	}
	if len(value) > maxFileSize {
		return "", fmt.Errorf("file: value of %d bytes is too large: %w", len(value), provider.ErrInvalidRecord)
	}
	resolved, err := fsutil.Resolve(p, credRule.What)
	if err != nil {
		return "", fileError(p, err)
	}
	dir, err := fsutil.MkdirAll(filepath.Dir(resolved), dirRule)
	if err != nil {
		return "", fileError(p, err)
	}
	defer dir.Close()
	name := filepath.Base(resolved)
	lock, err := dir.Lock(ctx, name+".lock", b.opts.LockPoll)
	if err != nil {
		if ctx.Err() != nil {
			return "", provider.Transient(fmt.Errorf("file: %w", err))
		}
		return "", fileError(p, err)
	}
	defer lock.Unlock()

	cur, err := dir.ReadFile(name, credRule)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if expected != "" {
			return "", fmt.Errorf("file: %s no longer exists: %w", p, provider.ErrConflict)
		}
	case err != nil:
		return "", fileError(p, err)
	case expected == "":
		return "", fmt.Errorf("file: %s already exists: %w", p, provider.ErrConflict)
	case versionOf(cur) != expected:
		return "", fmt.Errorf("file: %s changed since it was read: %w", p, provider.ErrConflict)
	}
	if err := ctx.Err(); err != nil {
		return "", ctxError(err)
	}
	if err := dir.WriteFile(name, value, 0o600); err != nil {
		return "", provider.Transient(fmt.Errorf("file: %w", err))
	}
	return versionOf(value), nil
}

// CheckWrite reports whether the credential file of key can be written:
// its path passes the trust rule and its directory is writable. It runs
// before a refresh token is spent, so an untrusted path is refused before
// anything is lost.
func (b *Backend) CheckWrite(ctx context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	resolved, err := fsutil.Resolve(p, credRule.What)
	if err != nil {
		return fileError(p, err)
	}
	dir := filepath.Dir(resolved)
	if err := fsutil.Writable(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file: directory %s is not writable: %w", dir, provider.ErrPermission)
	}
	return nil
}
