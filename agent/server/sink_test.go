package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/internal/faults"
	"github.com/credhelper/credhelper/internal/fsutil"
	"github.com/credhelper/credhelper/internal/testexec"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// devEngine is a real engine on the file backend, refreshed by a dev
// issuer in this process, over pairs of the given lifetime.
type devEngine struct {
	e    *refresh.Engine
	iss  *dev.Server
	key  string
	minV time.Duration
}

func newDevEngine(t *testing.T, lifetime, floor, minValidity time.Duration, m *server.Metrics) *devEngine {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	iss, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iss.Close() })
	dir := t.TempDir()
	p, err := iss.Mint(provider.GenerateRequest{Lifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "cred.json")
	data, _ := (&provider.Record{Pair: p}).Encode()
	if err := os.WriteFile(key, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := file.New()
	is, err := momento.New(func(o *momento.Options) { o.Addr, o.Insecure = iss.Addr(), true })
	if err != nil {
		t.Fatal(err)
	}
	e, err := refresh.New(b, is, key, func(o *refresh.Options) {
		o.RefreshFloor, o.MinValidity, o.JournalDir = floor, minValidity, filepath.Join(dir, "journal")
		if m != nil {
			o.Metrics = m.Engine("p")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &devEngine{e: e, iss: iss, key: key, minV: minValidity}
}

// startSinkServer serves one kept profile "p" with sinks and returns the
// server's log and metrics.
func startSinkServer(t *testing.T, prov provider.CredentialProvider, minV time.Duration, m *server.Metrics, sinks ...server.SinkSpec) (*testServer, *testexec.Buffer) {
	t.Helper()
	logs := &testexec.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := startServer(t, []server.Profile{{Name: "p", Provider: prov, Keep: true, Sinks: sinks, MinValidity: minV}},
		func(o *server.Options) { o.Logger, o.Metrics = log, m })
	return ts, logs
}

// TestSinkConsumerSeesEveryGeneration watches json and token sinks with
// inotify, as a consumer reloading on change would, while the engine
// refreshes 2-second pairs: every generation appears, each file read is
// whole, and none holds a pair with less than min_validity left.
func TestSinkConsumerSeesEveryGeneration(t *testing.T) {
	const minV = 300 * time.Millisecond
	m := server.NewMetrics()
	de := newDevEngine(t, 5*time.Second, 2500*time.Millisecond, minV, m)
	dir := filepath.Join(t.TempDir(), "sinks") // created by the agent
	jsonPath, tokenPath := filepath.Join(dir, "cred.json"), filepath.Join(dir, "token")

	// Watch before the agent creates anything: the directory's parent
	// first, then the directory once it appears.
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		gen   uint64
		left  time.Duration
		token string
	}
	var (
		mu    sync.Mutex
		views []seen
		bad   []string
		empty int // reads of an emptied sink (the pair could not be renewed in time)
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var rfds unix.FdSet
			rfds.Set(fd)
			tv := unix.Timeval{Usec: 100_000}
			if n, _ := unix.Select(fd+1, &rfds, nil, nil, &tv); n <= 0 {
				continue
			}
			n, err := unix.Read(fd, buf)
			if err != nil || n <= 0 {
				continue
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
				off += unix.SizeofInotifyEvent + int(ev.Len)
				now := time.Now()
				switch name {
				case "cred.json":
					b, err := os.ReadFile(jsonPath)
					if err != nil {
						continue // replaced again meanwhile
					}
					var doc struct {
						Token      string `json:"token"`
						Expiry     string `json:"expiry"`
						Generation uint64 `json:"generation"`
					}
					mu.Lock()
					if len(b) == 0 {
						empty++
					} else if err := json.Unmarshal(b, &doc); err != nil || doc.Token == "" {
						bad = append(bad, fmt.Sprintf("partial or empty json sink %q", b))
					} else if exp, err := time.Parse(time.RFC3339, doc.Expiry); err != nil {
						bad = append(bad, "expiry not RFC 3339: "+doc.Expiry)
					} else {
						views = append(views, seen{gen: doc.Generation, left: exp.Sub(now), token: doc.Token})
					}
					mu.Unlock()
				case "token":
					b, err := os.ReadFile(tokenPath)
					if err != nil {
						continue
					}
					mu.Lock()
					if len(b) == 0 {
						empty++
					} else if len(b) < 2 || b[len(b)-1] != '\n' || bytes.Count(b, []byte("\n")) != 1 {
						bad = append(bad, fmt.Sprintf("partial token sink of %d bytes", len(b)))
					}
					mu.Unlock()
				}
			}
		}
	}()

	ts, logs := startSinkServer(t, de.e, minV, m,
		server.SinkSpec{Path: jsonPath, Format: server.FormatJSON},
		server.SinkSpec{Path: tokenPath})
	time.Sleep(8 * time.Second)
	// Stop once the sink holds the stored generation, so that the last
	// commit has had its write.
	waitFile(t, jsonPath, func(b []byte) bool {
		var doc struct{ Generation uint64 }
		return json.Unmarshal(b, &doc) == nil && doc.Generation == readRecord(t, de.key).Pair.Generation
	})
	ts.stop(t)
	close(stop)
	<-done

	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	expired, _ := promValue(parseProm(t, metricsText(t, m)), "credhelper_sink_expired_total", "profile", "p")
	if empty > 0 && expired == 0 {
		t.Errorf("the consumer read an empty sink %d times, but no sink was expired", empty)
	}
	if expired > 0 {
		// The machine was too loaded to refresh a 5-second pair within its
		// window; the sink rightly went empty, so generations may be missing.
		t.Logf("sink expired %v times under load; not checking that every generation was seen", expired)
		return
	}
	st := de.iss.Stats()
	if st.Refreshes < 3 || st.Reuses != 0 || st.Rejected != 0 {
		t.Fatalf("issuer %+v: want at least 3 refreshes, none reused or rejected", st)
	}
	gens := map[uint64]bool{}
	for _, v := range views {
		gens[v.gen] = true
		// The sink pair's expiry is whole seconds, rounded down: the
		// actual validity is at least what we computed.
		if v.left < minV {
			t.Errorf("the consumer read generation %d with %v left, under min_validity %v", v.gen, v.left, minV)
		}
	}
	// The minted pair (generation 0) may already be due when the agent
	// starts, and then the first pair it writes is generation 1.
	first := uint64(0)
	if !gens[0] {
		first = 1
	}
	for g := first; g <= st.Refreshes; g++ {
		if !gens[g] {
			t.Errorf("the consumer never saw generation %d (saw %v; issuer refreshed %d times)\n%s", g, gens, st.Refreshes, logs.String())
		}
	}
	if v, _ := promValue(parseProm(t, metricsText(t, m)), "credhelper_sink_writes_total", "profile", "p"); v < float64(2*(st.Refreshes+1-first)) {
		t.Errorf("credhelper_sink_writes_total = %v, want at least %d", v, 2*(st.Refreshes+1-first))
	}
	info, err := os.Stat(dir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("sink directory mode = %v (%v), want 0700", info.Mode().Perm(), err)
	}
}

func metricsText(t *testing.T, m *server.Metrics) string {
	t.Helper()
	var b bytes.Buffer
	if err := m.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestSinkTemplateErrorsAtStart: a template that does not parse, or that
// names a field a pair does not have, is refused by New, not at the first
// rotation.
func TestSinkTemplateErrorsAtStart(t *testing.T) {
	fp := &fakeProvider{}
	dir := t.TempDir()
	for _, c := range []struct{ tmpl, want string }{
		{"key={{.Token", "unclosed action"},
		{"key={{.Secret}}", "can't evaluate field Secret"},
		{"key={{.Token | nosuchfunc}}", "function \"nosuchfunc\" not defined"},
	} {
		_, err := server.New([]server.Profile{{Name: "p", Provider: fp, Keep: true,
			Sinks: []server.SinkSpec{{Path: filepath.Join(dir, "out"), Format: server.FormatTemplate, Template: c.tmpl}}}})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "profile \"p\"") {
			t.Errorf("template %q: got %v, want an error naming the profile and %q", c.tmpl, err, c.want)
		}
	}
	for _, spec := range []server.SinkSpec{
		{Path: "relative/token"},
		{Path: filepath.Join(dir, "x"), Format: "yaml"},
		{Path: filepath.Join(dir, "x"), Mode: 0o4755},
	} {
		if _, err := server.New([]server.Profile{{Name: "p", Provider: fp, Keep: true, Sinks: []server.SinkSpec{spec}}}); err == nil {
			t.Errorf("spec %+v accepted", spec)
		}
	}
}

// TestSinkFormats checks each format's exact content and the file's mode.
func TestSinkFormats(t *testing.T) {
	dir := t.TempDir()
	p := testPair(4, time.Hour)
	p.Endpoint = "cell-1.example.com"
	fp := &fakeProvider{pair: p}
	exp := p.ValidUntil.UTC().Format(time.RFC3339)
	sinks := []server.SinkSpec{
		{Path: filepath.Join(dir, "missing", "token")}, // the directory is created 0700
		{Path: filepath.Join(dir, "env"), Format: server.FormatEnv, Mode: 0o640},
		{Path: filepath.Join(dir, "json"), Format: server.FormatJSON},
		{Path: filepath.Join(dir, "tmpl"), Format: server.FormatTemplate, Template: "{{.Profile}} {{.Token}} {{.Endpoint}} {{.Expiry}} {{.ExpiryUnix}} {{.Generation}}"},
	}
	ts, _ := startSinkServer(t, fp, time.Second, nil, sinks...)
	defer ts.stop(t)
	want := map[string]string{
		"token": p.AuthToken + "\n",
		"env":   fmt.Sprintf("MOMENTO_API_KEY=\"%s\"\nMOMENTO_ENDPOINT=\"cell-1.example.com\"\n", p.AuthToken),
		"json":  fmt.Sprintf(`{"token":"%s","endpoint":"cell-1.example.com","expiry":"%s","generation":4}`+"\n", p.AuthToken, exp),
		"tmpl":  fmt.Sprintf("p %s cell-1.example.com %s %d 4", p.AuthToken, exp, p.ValidUntil.Unix()),
	}
	modes := map[string]fs.FileMode{"missing/token": 0o600, "env": 0o640, "json": 0o600, "tmpl": 0o600}
	want["missing/token"] = want["token"]
	delete(want, "token")
	for name, w := range want {
		got := waitFile(t, filepath.Join(dir, name), func(b []byte) bool { return len(b) > 0 })
		if string(got) != w {
			t.Errorf("%s sink = %q, want %q", name, got, w)
		}
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != modes[name] {
			t.Errorf("%s sink mode = %v (%v), want %v", name, fi.Mode().Perm(), err, modes[name])
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "missing")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created sink directory: %v, %v; want mode 0700", fi.Mode().Perm(), err)
	}
}

// waitFile polls path until ok accepts its content (5 s at most).
func waitFile(t *testing.T, path string, ok func([]byte) bool) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && ok(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never became as expected (last %q, %v)", path, b, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSinkCommand: the command runs after each write with the sink's path
// in its environment; a non-zero exit and a timeout are logged and counted
// without holding up the keeper.
func TestSinkCommand(t *testing.T) {
	dir := t.TempDir()
	p := testPair(1, time.Hour)
	fp := &fakeProvider{pair: p}
	m := server.NewMetrics()
	copyTo := filepath.Join(dir, "copied")
	ts, logs := startSinkServer(t, fp, time.Second, m,
		server.SinkSpec{Path: filepath.Join(dir, "ok"), Command: []string{"sh", "-c", `cp "$CREDHELPER_SINK" ` + copyTo + `; test "$CREDHELPER_PROFILE" = p`}},
		server.SinkSpec{Path: filepath.Join(dir, "fails"), Command: []string{"sh", "-c", "exit 3"}},
		server.SinkSpec{Path: filepath.Join(dir, "hangs"), Command: []string{"sleep", "30"}, CommandTimeout: 300 * time.Millisecond})
	defer ts.stop(t)
	if got := waitFile(t, copyTo, func(b []byte) bool { return len(b) > 0 }); string(got) != p.AuthToken+"\n" {
		t.Errorf("the command saw %q, want the token", got)
	}
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	for {
		v, _ := promValue(parseProm(t, metricsText(t, m)), "credhelper_sink_command_failures_total", "profile", "p")
		if v == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("command failures = %v, want 2 (exit 3 and the timeout)\n%s", v, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the 300ms timeout took %v to end a 30s sleep", took)
	}
	log := logs.String()
	for _, want := range []string{"exit status 3", "timed out after 300ms"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, p.AuthToken) || strings.Contains(log, p.RefreshToken) {
		t.Error("a token leaked into the log")
	}
	// The next generation runs the commands again.
	fp.set(testPair(2, time.Hour), nil)
	ts.srv.Notify("p")
	waitFile(t, copyTo, func(b []byte) bool { return string(b) == testPair(2, time.Hour).AuthToken+"\n" })
}

// TestSinkOwnerKept: a file another user owns keeps its owner and group
// when the agent (root) replaces it; a new file is the agent's.
func TestSinkOwnerKept(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (to chown a sink to another user), as CI runs it")
	}
	dir := t.TempDir()
	owned := filepath.Join(dir, "owned")
	if err := os.WriteFile(owned, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(owned, 65534, 65533); err != nil {
		t.Fatal(err)
	}
	p := testPair(1, time.Hour)
	ts, _ := startSinkServer(t, &fakeProvider{pair: p}, time.Second, nil,
		server.SinkSpec{Path: owned, Mode: 0o640}, server.SinkSpec{Path: filepath.Join(dir, "new")})
	defer ts.stop(t)
	waitFile(t, owned, func(b []byte) bool { return string(b) == p.AuthToken+"\n" })
	fi, _ := os.Stat(owned)
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 65534 || st.Gid != 65533 || fi.Mode().Perm() != 0o640 {
		t.Errorf("owned sink: uid %d gid %d mode %v, want 65534 65533 0640", st.Uid, st.Gid, fi.Mode().Perm())
	}
	waitFile(t, filepath.Join(dir, "new"), func(b []byte) bool { return len(b) > 0 })
	fi, _ = os.Stat(filepath.Join(dir, "new"))
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
		t.Errorf("new sink owned by %d, want 0", st.Uid)
	}
}

// TestSinkDirectoryFaults: a sink whose directory is read-only, full, or
// writable by others is not written; the failure is logged, counted and
// retried, the credential is still served, and once the fault is gone the
// sink is written.
func TestSinkDirectoryFaults(t *testing.T) {
	for _, c := range []struct {
		name  string
		fault func(dir string) (func() error, error)
		want  string
		// late: the fault comes after the agent started (a directory
		// others can write is refused at start; see
		// TestSinkDirectoryRefusedAtStart), and a new pair is written.
		late bool
	}{
		{"read-only", faults.ReadOnly, "read-only file system", false},
		{"full", faults.Full, "no space left on device", false},
		{"writable by others", func(dir string) (func() error, error) {
			return func() error { return os.Chmod(dir, 0o700) }, os.Chmod(dir, 0o777)
		}, "writable by group or others", true},
		// Sticky (as /tmp is) and another user's file already there: the
		// agent would have handed the token to its owner.
		{"sticky shared, another user's file first", func(dir string) (func() error, error) {
			planted := filepath.Join(dir, "token")
			if err := os.WriteFile(planted, nil, 0o666); err != nil {
				return nil, err
			}
			if err := os.Chown(planted, 65534, 65534); err != nil {
				return nil, err
			}
			return func() error {
				if err := os.Remove(planted); err != nil {
					return err
				}
				return os.Chmod(dir, 0o700)
			}, os.Chmod(dir, 0o777|fs.ModeSticky)
		}, "(mode 1777), so another user could create or link the sink file first", true},
		{"a link", func(dir string) (func() error, error) {
			link := filepath.Join(dir, "token")
			return func() error { return os.Remove(link) }, os.Symlink(filepath.Join(dir, "elsewhere"), link)
		}, "is a symbolic link", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sinks")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			var undo func() error
			fault := func() {
				var err error
				if undo, err = c.fault(dir); err != nil {
					t.Fatal(err)
				}
			}
			if !c.late {
				fault()
			}
			undone := false
			defer func() {
				if !undone && undo != nil {
					undo()
				}
			}()
			p := testPair(1, time.Hour)
			fp := &fakeProvider{pair: p}
			m := server.NewMetrics()
			ts, logs := startSinkServer(t, fp, time.Second, m, server.SinkSpec{Path: filepath.Join(dir, "token")})
			defer ts.stop(t)
			if c.late {
				waitFile(t, filepath.Join(dir, "token"), func(b []byte) bool { return string(b) == p.AuthToken+"\n" })
				if err := os.Remove(filepath.Join(dir, "token")); err != nil {
					t.Fatal(err)
				}
				fault()
				p = testPair(2, time.Hour)
				fp.set(p, nil)
				ts.srv.Notify("p")
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				v, _ := promValue(parseProm(t, metricsText(t, m)), "credhelper_sink_write_failures_total", "profile", "p")
				if v >= 2 { // the first attempt and a retry
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("write failures = %v, want at least 2\n%s", v, logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if !strings.Contains(logs.String(), c.want) {
				t.Errorf("log lacks %q:\n%s", c.want, logs.String())
			}
			got, err := ts.client().Get(context.Background(), agent.Request{Profile: "p"})
			if err != nil || got.AuthToken != p.AuthToken {
				t.Errorf("get during the sink fault: %v", err)
			}
			if err := undo(); err != nil {
				t.Fatal(err)
			}
			undone = true
			waitFile(t, filepath.Join(dir, "token"), func(b []byte) bool { return string(b) == p.AuthToken+"\n" })
		})
	}
}

// TestSinkDirectoryRefusedAtStart: a sink directory others can write
// (sticky or not), or under one, is refused when the agent starts (and at
// reload, and by config check) rather than at every write.
func TestSinkDirectoryRefusedAtStart(t *testing.T) {
	base := t.TempDir()
	shared, sticky := filepath.Join(base, "shared"), filepath.Join(base, "sticky")
	for dir, mode := range map[string]fs.FileMode{shared: 0o777, sticky: 0o777 | fs.ModeSticky} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
	}
	for path, want := range map[string]string{
		filepath.Join(shared, "token"):           "is writable by group or others (mode 0777)",
		filepath.Join(sticky, "token"):           "is writable by group or others (mode 1777)",
		filepath.Join(shared, "sub", "dir", "t"): shared,
	} {
		_, err := server.New([]server.Profile{{Name: "p", Provider: &fakeProvider{pair: testPair(1, time.Hour)}, Keep: true,
			Sinks: []server.SinkSpec{{Path: path}}}})
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, fsutil.ErrUntrusted) {
			t.Errorf("sink %s: %v; want a refusal naming %q", path, err, want)
		}
		if _, serr := os.Stat(path); !os.IsNotExist(serr) {
			t.Errorf("sink %s: created (%v)", path, serr)
		}
	}
}

// TestSinkExpires: when the pair cannot be renewed, its sink is emptied
// (or removed) before it drops below min_validity, and the event logged.
func TestSinkExpires(t *testing.T) {
	dir := t.TempDir()
	const minV = time.Second
	p := testPair(1, minV+2500*time.Millisecond) // due to leave the file 0.5-1.5 s from now
	fp := &fakeProvider{pair: p}
	m := server.NewMetrics()
	emptied, removed := filepath.Join(dir, "emptied"), filepath.Join(dir, "removed")
	ts, logs := startSinkServer(t, fp, minV, m, server.SinkSpec{Path: emptied}, server.SinkSpec{Path: removed, Remove: true})
	defer ts.stop(t)
	waitFile(t, emptied, func(b []byte) bool { return len(b) > 0 })
	fp.set(provider.Pair{}, fmt.Errorf("issuer down: %w", provider.ErrExpired))
	waitFile(t, emptied, func(b []byte) bool { return len(b) == 0 })
	if left := time.Until(p.ValidUntil); left < minV {
		t.Errorf("the sink was emptied with %v left, under min_validity %v", left, minV)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(removed); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sink with remove was not removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v, _ := promValue(parseProm(t, metricsText(t, m)), "credhelper_sink_expired_total", "profile", "p")
		if v == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("credhelper_sink_expired_total = %v, want 2", v)
		}
	}
	if !strings.Contains(logs.String(), "below min_validity") {
		t.Errorf("expiry not logged:\n%s", logs.String())
	}
}

// TestClockAdvancedByServer: engines on the agent's Clock have no ticker;
// the server advances the clock before each call, so a request never gets
// a pair the engine would not hand out, and refreshes still happen.
func TestClockAdvancedByServer(t *testing.T) {
	const minV = 300 * time.Millisecond
	clk := server.NewClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	iss, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	dir := t.TempDir()
	p, _ := iss.Mint(provider.GenerateRequest{Lifetime: 3 * time.Second})
	data, _ := (&provider.Record{Pair: p}).Encode()
	key := filepath.Join(dir, "cred.json")
	if err := os.WriteFile(key, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := file.New()
	is, _ := momento.New(func(o *momento.Options) { o.Addr, o.Insecure = iss.Addr(), true })
	e, err := refresh.New(b, is, key, func(o *refresh.Options) {
		o.RefreshFloor, o.MinValidity, o.JournalDir, o.Clock = 1500*time.Millisecond, minV, filepath.Join(dir, "journal"), clk
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ts := startServer(t, []server.Profile{{Name: "p", Provider: e}}, func(o *server.Options) { o.Clock = clk })
	defer ts.stop(t)
	var last uint64
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		got, err := ts.client().Get(context.Background(), agent.Request{Profile: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if left := time.Until(got.ValidUntil); left < minV {
			t.Fatalf("served generation %d with %v left, under min_validity %v", got.Generation, left, minV)
		}
		last = got.Generation
	}
	if last < 2 {
		t.Errorf("after 5 s of 3-second pairs the agent serves generation %d, want at least 2", last)
	}
}

// TestSinkPathsUnique: two sinks on one file are refused, across profiles
// too.
func TestSinkPathsUnique(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	fp := &fakeProvider{}
	_, err := server.New([]server.Profile{
		{Name: "a", Provider: fp, Keep: true, Sinks: []server.SinkSpec{{Path: path}}},
		{Name: "b", Provider: fp, Keep: true, Sinks: []server.SinkSpec{{Path: path}}},
	})
	if err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("got %v, want the path refused as given twice", err)
	}
}
