package file

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

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
	data, err := readChecked(p)
	if err != nil {
		return provider.Entry{}, err
	}
	return provider.Entry{Value: data, Version: versionOf(data)}, nil
}

// readChecked reads p, refusing files group or others can access.
func readChecked(p string) ([]byte, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file: no credential at %s: %w", p, provider.ErrNotFound)
	}
	if err != nil {
		return nil, fileError("open", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileError("stat", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("file: %s is not a regular file: %w", p, provider.ErrInvalidRecord)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("file: %s is accessible by group or others (mode %04o): run 'chmod 600 %s': %w", p, perm, p, provider.ErrPermission)
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("file: %s is %d bytes, larger than any credential record: %w", p, fi.Size(), provider.ErrInvalidRecord)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fileError("read", p, err)
	}
	return data, nil
}

// ctxError reports a caller's expired or canceled context as a transient
// failure, as the other backends do.
func ctxError(err error) error {
	return provider.Transient(fmt.Errorf("file: %w", err))
}

func fileError(op, p string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("file: %s %s: permission denied: check the file's owner and mode: %w", op, p, provider.ErrPermission)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("file: %s %s: %w", op, p, err)
}

// CompareAndSwap replaces the file's content if its version is expected.
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
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fileError("create directory", dir, err)
	}
	unlock, err := b.lock(ctx, p)
	if err != nil {
		return "", err
	}
	defer unlock()

	cur, err := readChecked(p)
	switch {
	case errors.Is(err, provider.ErrNotFound):
		if expected != "" {
			return "", fmt.Errorf("file: %s no longer exists: %w", p, provider.ErrConflict)
		}
	case err != nil:
		return "", err
	case expected == "":
		return "", fmt.Errorf("file: %s already exists: %w", p, provider.ErrConflict)
	case versionOf(cur) != expected:
		return "", fmt.Errorf("file: %s changed since it was read: %w", p, provider.ErrConflict)
	}
	if err := ctx.Err(); err != nil {
		return "", ctxError(err)
	}
	if err := writeAtomic(p, value); err != nil {
		return "", err
	}
	return versionOf(value), nil
}

// CheckWrite reports whether the directory of key is writable.
func (b *Backend) CheckWrite(ctx context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := unix.Access(dir, unix.W_OK); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file: directory %s is not writable: %w", dir, provider.ErrPermission)
	}
	return nil
}

// lock takes the exclusive flock on p's sibling lock file, polling so the
// wait honours ctx.
func (b *Backend) lock(ctx context.Context, p string) (func(), error) {
	lp := p + ".lock"
	f, err := os.OpenFile(lp, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fileError("open lock", lp, err)
	}
	wait := b.opts.LockPoll
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fileError("lock", lp, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, provider.Transient(fmt.Errorf("file: waiting for lock %s: %w", lp, ctx.Err()))
		case <-t.C:
		}
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// writeAtomic writes data to p via a temporary file, fsync and rename, then
// fsyncs the directory so the rename itself is durable.
func writeAtomic(p string, data []byte) (err error) {
	dir := filepath.Dir(p)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return provider.Transient(fileError("create temporary file in", dir, err))
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fileError("chmod", tmp.Name(), err)
	}
	if _, err := tmp.Write(data); err != nil {
		return provider.Transient(fileError("write", tmp.Name(), err))
	}
	if err := tmp.Sync(); err != nil {
		return provider.Transient(fileError("fsync", tmp.Name(), err))
	}
	if err := tmp.Close(); err != nil {
		return provider.Transient(fileError("close", tmp.Name(), err))
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return provider.Transient(fileError("rename into", p, err))
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so entries created or renamed in it survive a
// crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fileError("open directory", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return provider.Transient(fileError("fsync directory", dir, err))
	}
	return nil
}
