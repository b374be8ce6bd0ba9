package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/provider"
)

// TestReloadUnderLoad changes, removes and adds profiles with SIGHUP (sent
// by `credhelper agent reload`) while `credhelper get` processes keep
// asking and a refresh of the changed profile is at the issuer: no caller
// sees an error, the refresh in flight is committed once (every refresh
// the issuer made is a stored generation), nothing is reused, and the
// removed profile's sink is emptied.
func TestReloadUnderLoad(t *testing.T) {
	credhelperBin(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	iss, err := dev.Listen(ctx, "127.0.0.1:0", func(o *dev.Options) { o.RefreshDelay = 800 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	dir, run := t.TempDir(), socketDir(t)
	for _, name := range []string{"a", "b", "c", "d"} {
		p, err := iss.Mint(provider.GenerateRequest{Lifetime: 4 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := (&provider.Record{Pair: p}).Encode()
		if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	profile := func(name, minValidity string) string {
		return fmt.Sprintf("[profiles.%[1]s]\nbackend = \"file:%[2]s/%[1]s.json\"\nissuer = \"dev:%[3]s\"\nrefresh_floor = \"2s\"\nmin_validity = %[4]q\njournal_dir = \"%[2]s/journal\"\n[[profiles.%[1]s.sink]]\npath = \"%[2]s/sinks/%[1]s\"\n\n",
			name, dir, iss.Addr(), minValidity)
	}
	cfg := filepath.Join(dir, "config.toml")
	write := func(body string) {
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(profile("a", "500ms") + profile("b", "500ms") + profile("c", "500ms"))
	env := append(baseEnv(), "XDG_RUNTIME_DIR="+run, "CREDHELPER_CONFIG="+cfg, "XDG_STATE_HOME="+filepath.Join(dir, "state"))
	ap := startAgent(t, env)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		calls    int
	)
	stop := make(chan struct{})
	for _, name := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				out, errOut, code := runCLI(t, env, "get", "--profile", name)
				mu.Lock()
				calls++
				if code != 0 || strings.TrimSpace(out) == "" {
					failures = append(failures, fmt.Sprintf("get %s: exit %d: %s", name, code, errOut))
				}
				mu.Unlock()
			}
		}()
	}

	// Reload while a's refresh is at the issuer (it holds each for 800ms).
	isA := func(line map[string]any) bool { return line["profile"] == "a" }
	inFlight := ap.waitLogWhere(t, "credhelper refresh: refresh_started", isA, 10*time.Second)["generation"].(float64)
	write(profile("a", "600ms") + profile("b", "500ms") + profile("d", "500ms"))
	out, errOut, code := runCLI(t, env, "agent", "reload")
	if code != 0 || !strings.Contains(out, "reloaded its configuration") {
		t.Fatalf("agent reload: exit %d, %q %q\n%s", code, out, errOut, ap.log())
	}
	done := ap.waitLog(t, "agent: configuration reloaded", 5*time.Second)
	reloadedAt, _ := time.Parse(time.RFC3339Nano, done["time"].(string))
	if done["added"] != 1.0 || done["changed"] != 1.0 || done["removed"] != 1.0 {
		t.Errorf("reload logged %v, want added 1, changed 1, removed 1", done)
	}
	// The old engine commits the refresh it had in flight after the
	// reload has swapped it out.
	committed := ap.waitLogWhere(t, "credhelper refresh: committed", func(line map[string]any) bool {
		return isA(line) && line["generation"] == inFlight+1
	}, 5*time.Second)
	if at, _ := time.Parse(time.RFC3339Nano, committed["time"].(string)); !at.After(reloadedAt) {
		t.Errorf("a's refresh in flight committed at %v, before the reload ended at %v: the reload did not overlap it", at, reloadedAt)
	}
	time.Sleep(3 * time.Second) // load across a's next refresh, on the new engine
	close(stop)
	wg.Wait()
	if out, errOut, code := runCLI(t, env, "get", "--profile", "d"); code != 0 || out == "" {
		t.Errorf("get d after the reload: exit %d: %s", code, errOut)
	}

	// An invalid file is refused with its line, and the agent keeps
	// serving what it had.
	write(profile("a", "600ms") + "[profiles.b\n")
	_, errOut, code = runCLI(t, env, "agent", "reload")
	if code != 1 || !strings.Contains(errOut, "line ") || !strings.Contains(errOut, "still serving the previous configuration") {
		t.Errorf("reload of a broken file: exit %d, %q", code, errOut)
	}
	if out, errOut, code := runCLI(t, env, "get", "--profile", "d"); code != 0 || out == "" {
		t.Errorf("get d after a refused reload: exit %d: %s", code, errOut)
	}
	if code := ap.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("agent exit code %d", code)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Errorf("%d of %d callers failed, first: %s\n%s", len(failures), calls, failures[0], ap.log())
	}
	st := iss.Stats()
	var gens uint64
	for _, name := range []string{"a", "b", "c", "d"} {
		rec := readRecord(t, filepath.Join(dir, name+".json"))
		if rec.Lease != nil {
			t.Errorf("%s: a lease is left on the record", name)
		}
		gens += rec.Pair.Generation
	}
	if st.Refreshes != gens || st.Reuses != 0 || st.Rejected != 0 || st.RefreshAttempts != st.Refreshes {
		t.Errorf("issuer %+v, stored generations add up to %d: want every refresh committed exactly once, none reused or rejected\n%s", st, gens, ap.log())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sinks", "c")); err != nil || len(b) != 0 {
		t.Errorf("the removed profile's sink holds %d bytes (%v), want it emptied", len(b), err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sinks", "d")); err != nil || len(b) == 0 {
		t.Errorf("the added profile's sink is empty (%v)", err)
	}
	t.Logf("%d get calls across the reload; issuer %+v", calls, st)
}

func readRecord(t *testing.T, path string) *provider.Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := provider.DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}
