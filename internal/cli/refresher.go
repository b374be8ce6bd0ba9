package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/internal/fsutil"
	"github.com/credhelper/credhelper/refresh"
)

// A one-shot command (get and every face without an agent) serves a pair
// that is due but still usable at once, and hands its refresh to a
// detached process of its own, the background refresher: the caller of
// `$(credhelper get)`, git or kubectl never waits for an issuer while a
// usable pair exists, and the refresh is still carried through (a process
// must never abandon a refresh it claimed). At most one refresher per
// credential runs on a host (a lock in the state directory); its log and
// its last outcome are kept there, and the next command that serves the
// pair reports a failed refresh once on stderr.

// refresherRequest is what a command hands its refresher on stdin: the
// settings given as flags (environment variables are inherited) and where
// to find the rest.
type refresherRequest struct {
	ConfigPath string         `json:"configPath,omitempty"`
	Profile    string         `json:"profile"`
	LogLevel   string         `json:"logLevel,omitempty"`
	Flags      config.Profile `json:"flags"`
}

// refresherStatus is a refresher's last outcome for one credential.
type refresherStatus struct {
	At    time.Time `json:"at"`
	Key   string    `json:"key"`
	Error string    `json:"error,omitempty"`
}

// refresherLogLimit caps the refreshers' shared log; it starts over when
// larger.
const refresherLogLimit = 1 << 20

// refresherDir opens (creating it 0700) where refreshers keep their
// locks, outcomes and log: a directory of this user's under the state
// directory, held to the local-state trust rule.
func refresherDir() (*fsutil.Dir, error) {
	path, err := refresherPath()
	if err != nil {
		return nil, err
	}
	return fsutil.MkdirAll(path, fsutil.Rule{What: "refresher directory", Mine: true})
}

// refresherPath is the refreshers' directory: "refresher" beside the
// default journal directory.
func refresherPath() (string, error) {
	j, err := refresh.DefaultJournalDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(j), "refresher"), nil
}

// refresherFile is what a refresher's status and log must be.
var refresherFile = fsutil.Rule{What: "refresher file", Private: true, Mine: true, MaxSize: 64 << 10}

// refresherName is the file name stem for key's lock and outcome.
func refresherName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:12])
}

// refresherExecutable names the binary a refresher runs: this one (tests
// running the command in process point it at a built credhelper).
var refresherExecutable = os.Executable

// startRefresher reports a failed previous background refresh of w's
// credential, then starts a detached refresher for it. It returns false
// when it could not, so the caller refreshes in process.
func (a *app) startRefresher(w *wired) bool {
	dir, err := refresherDir()
	if err != nil {
		a.logger.Debug("credhelper: no background refresh: " + err.Error())
		return false
	}
	defer dir.Close()
	name := refresherName(w.key)
	a.reportRefresher(dir, name+".status")
	req, err := json.Marshal(refresherRequest{ConfigPath: a.configPath, Profile: w.name, LogLevel: a.logLevel, Flags: a.flags})
	if err != nil {
		return false
	}
	exe, err := refresherExecutable()
	if err != nil {
		return false
	}
	log, err := dir.OpenAppend("refresher.log", 0o600, refresherFile)
	if err != nil {
		a.logger.Debug("credhelper: no background refresh: " + err.Error())
		return false
	}
	defer log.Close()
	if fi, err := log.Stat(); err == nil && fi.Size() > refresherLogLimit {
		_ = log.Truncate(0)
	}
	if err := spawnDetached(exe, []string{"background-refresh"}, req, log); err != nil {
		a.logger.Debug("credhelper: no background refresh: " + err.Error())
		return false
	}
	return true
}

// reportRefresher says once, on stderr, that the last background refresh
// of this credential failed, if it did in the last hour.
func (a *app) reportRefresher(dir *fsutil.Dir, status string) {
	data, err := dir.ReadFile(status, refresherFile)
	if err != nil {
		return
	}
	logPath := dir.Join("refresher.log")
	var st refresherStatus
	if json.Unmarshal(data, &st) != nil || st.Error == "" || time.Since(st.At) > time.Hour {
		return
	}
	a.logger.Warn("credhelper: the last background refresh failed; serving the current pair while it has the minimum validity left",
		slog.String("key", st.Key), slog.Time("at", st.At), slog.String("error", st.Error), slog.String("log", logPath))
}

// backgroundRefreshCommand is the detached refresher (internal).
func (a *app) backgroundRefreshCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "background-refresh",
		Short:  "Carry a due refresh through, detached from the command that served the pair (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req refresherRequest
			if err := json.NewDecoder(io.LimitReader(a.stdin, 1<<20)).Decode(&req); err != nil {
				return usagef("background-refresh: no request on standard input: %v", err)
			}
			a.configPath, a.profile, a.flags = req.ConfigPath, req.Profile, req.Flags
			if req.LogLevel != "" {
				a.logLevel = req.LogLevel
			}
			return a.backgroundRefresh(cmd.Context())
		},
	}
}

func (a *app) backgroundRefresh(ctx context.Context) error {
	w, err := a.wire(ctx, a.profile)
	if err != nil {
		return err
	}
	defer w.Close()
	dir, err := refresherDir()
	if err != nil {
		return err
	}
	defer dir.Close()
	name := refresherName(w.key)
	lock, ok, err := dir.TryLock(name + ".lock")
	if err != nil {
		return err
	}
	if !ok {
		return nil // another refresher of this credential is at work
	}
	defer lock.Unlock()
	e, err := a.engine(w, func(o *refresh.Options) { o.Jitter = 0 })
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*w.profile.LeaseDuration.Duration+2*w.profile.IssuerTimeout.Duration+2*w.profile.ClockSkew.Duration)
	defer cancel()
	_, rerr := e.RefreshIfDue(ctx)
	if cerr := e.Close(); rerr == nil {
		rerr = cerr
	}
	st := refresherStatus{At: time.Now().UTC(), Key: w.key}
	if rerr != nil {
		st.Error = message(rerr)
	}
	// The outcome first, then the log line: whoever reads the log sees an
	// outcome already on record.
	if data, err := json.Marshal(st); err == nil {
		_ = dir.WriteFile(name+".status", data, 0o600)
	}
	if rerr != nil {
		a.logger.Warn("credhelper: background refresh failed", slog.String("key", w.key), slog.String("error", st.Error))
	}
	if rerr != nil {
		return fmt.Errorf("background refresh of %s: %w", w.key, rerr)
	}
	return nil
}
