package refresh_test

// Shared set-up of the multi-process tests (fleet_*_test.go and
// crash_*_test.go): how a worker process builds its backend, issuer and
// engine options from the parameters the parent passes, and the checks
// every fleet run must pass.
//
// Each test function starts with `if fleet.Child(buildTarget) { return }`:
// the parent test re-executes the test binary for every worker process
// (internal/fleet), and in those processes the same test function builds a
// Target here and drives it.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/credhelper/credhelper/backends/awssm"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/backends/vault"
	"github.com/credhelper/credhelper/internal/fleet"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/issuers/oauth2"
	"github.com/credhelper/credhelper/plugins"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// timing scales the engine down to lifetimes of seconds, as the demo does.
type timing = fleet.Timing

// stressTiming: 4s lifetimes, refreshed in the last 2s (plus up to 10%
// jitter), so a generation lasts about 2s.
var stressTiming = timing{
	Lifetime:      4 * time.Second,
	Fraction:      0.5,
	Floor:         2 * time.Second,
	MinValidity:   500 * time.Millisecond,
	Lease:         3 * time.Second,
	IssuerTimeout: time.Second,
	Skew:          500 * time.Millisecond,
	Retry:         100 * time.Millisecond,
	MaxRetry:      time.Second,
}

// engineOptions applies timing parameters, the shared journal directory and
// an optional failpoint to an engine.
func engineOptions(p map[string]string) (func(*refresh.Options), error) {
	tm, err := fleet.ParseTiming(func(k string) string { return p[k] })
	if err != nil {
		return nil, err
	}
	if p["journal"] == "" {
		return nil, errors.New("param journal missing")
	}
	fp := p["failpoint"]
	var fpDelay time.Duration
	if s := p["failpointDelay"]; s != "" {
		if fpDelay, err = time.ParseDuration(s); err != nil {
			return nil, err
		}
	}
	return func(eo *refresh.Options) {
		tm.Apply(eo)
		eo.JournalDir = p["journal"]
		if fp != "" {
			eo.Trace = fleet.StepTrace(func(step string) {
				if step != fp {
					return
				}
				if fpDelay > 0 {
					// Let the step proceed (the issuer request goes out),
					// then die while it is in flight.
					go func() {
						time.Sleep(fpDelay)
						_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
					}()
					return
				}
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			})
		}
	}, nil
}

// buildTarget builds a worker's backend, issuer and engine options from
// the parameters set by the parent (see fleetEnv).
func buildTarget(w fleet.Worker) (fleet.Target, error) {
	p := w.Params
	var closers []func() error
	closeAll := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	b, closeB, err := openBackend(p)
	if err != nil {
		return fleet.Target{}, err
	}
	if closeB != nil {
		closers = append(closers, closeB)
	}
	iss, closeI, err := openIssuer(p)
	if err != nil {
		closeAll()
		return fleet.Target{}, err
	}
	if closeI != nil {
		closers = append(closers, closeI)
	}
	opt, err := engineOptions(p)
	if err != nil {
		closeAll()
		return fleet.Target{}, err
	}
	t := fleet.Target{Backend: b, Issuer: iss, Key: p["key"], Options: []func(*refresh.Options){opt}, Close: closeAll}
	if p["force"] == "1" {
		t.Before = func(ctx context.Context, e *refresh.Engine) error {
			_, err := e.Refresh(ctx)
			return err
		}
	}
	return t, nil
}

// openBackend builds the backend named by p["backend"]; the parent uses it
// too, to seed and inspect the store.
func openBackend(p map[string]string) (provider.Backend, func() error, error) {
	switch p["backend"] {
	case "file":
		b, err := file.New()
		return b, nil, err
	case "awssm":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := awssm.NewFromConfig(ctx)
		return b, nil, err
	case "vault":
		b, err := vault.NewFromEnv()
		if err != nil {
			return nil, nil, err
		}
		return b, b.Close, nil
	case "plugin":
		pl, err := plugins.Open(plugins.Spec{Path: p["filePlugin"], SHA256: p["filePluginSum"]})
		if err != nil {
			return nil, nil, err
		}
		b, err := pl.Backend(context.Background())
		if err != nil {
			pl.Close()
			return nil, nil, err
		}
		return b, pl.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown backend %q", p["backend"])
}

func openIssuer(p map[string]string) (provider.Issuer, func() error, error) {
	switch p["issuer"] {
	case "momento":
		iss, err := momento.New(func(o *momento.Options) { o.Addr, o.Insecure = p["devAddr"], true })
		return iss, nil, err
	case "oauth2":
		iss, err := oauth2.New(p["tokenURL"], func(o *oauth2.Options) {
			o.ClientID, o.ClientSecret = dev.DefaultClientID, dev.DefaultClientSecret
		})
		return iss, nil, err
	case "plugin":
		pl, err := plugins.Open(plugins.Spec{
			Path: p["issuerPlugin"], SHA256: p["issuerPluginSum"],
			Args: []string{"-addr", p["devAddr"], "-insecure", "-timeout", "10s"},
		})
		if err != nil {
			return nil, nil, err
		}
		i, err := pl.Issuer(context.Background())
		if err != nil {
			pl.Close()
			return nil, nil, err
		}
		return i, pl.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown issuer %q", p["issuer"])
}

// fleetEnv is one test's dev issuer, store and shared parameters.
type fleetEnv struct {
	t       *testing.T
	srv     *dev.Server
	backend provider.Backend
	key     string
	journal string
	timing  timing
	params  map[string]string
}

// newFleetEnv starts a dev issuer, opens the backend in this process,
// picks a fresh key and stores a first pair minted with tm.Lifetime.
// backend is file, awssm, vault or plugin; issuer is momento, oauth2 or
// plugin.
func newFleetEnv(t *testing.T, backend, issuer string, tm timing, devOpts ...func(*dev.Options)) *fleetEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := dev.Listen(ctx, "127.0.0.1:0", devOpts...)
	if err != nil {
		t.Fatalf("dev issuer: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &fleetEnv{t: t, srv: srv, journal: filepath.Join(t.TempDir(), "journal"), timing: tm}
	e.params = tm.Params(map[string]string{
		"backend": backend, "issuer": issuer, "devAddr": srv.Addr(), "tokenURL": srv.TokenURL(), "journal": e.journal,
	})
	switch backend {
	case "file":
		e.key = filepath.Join(t.TempDir(), "cred.json")
	case "awssm":
		requireMoto(t)
		e.key = "credhelper-fleet/" + randomName(t.Name())
	case "vault":
		e.key = mountKV2(t) + "/fleet/" + randomName(t.Name())
	case "plugin":
		e.key = filepath.Join(t.TempDir(), "cred.json")
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	if backend == "plugin" || issuer == "plugin" {
		buildPlugins(t, e.params)
	}
	e.params["key"] = e.key
	b, closeB, err := openBackend(e.params)
	if err != nil {
		t.Fatalf("open %s backend: %v", backend, err)
	}
	if closeB != nil {
		t.Cleanup(func() { closeB() })
	}
	e.backend = b
	first, err := srv.Mint(provider.GenerateRequest{Lifetime: tm.Lifetime})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	value, err := (&provider.Record{Pair: first}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CompareAndSwap(ctxFor(t, 30*time.Second), e.key, "", value); err != nil {
		t.Fatalf("store the first pair: %v", err)
	}
	return e
}

// spec returns a fleet.Spec for this test with the env's parameters.
func (e *fleetEnv) spec(procs, goroutines int, gens uint64, d time.Duration) fleet.Spec {
	params := make(map[string]string, len(e.params))
	for k, v := range e.params {
		params[k] = v
	}
	return fleet.Spec{
		TestName: e.t.Name(), Processes: procs, Goroutines: goroutines, Generations: gens, Duration: d,
		MinValidity: e.timing.MinValidity, Interval: 5 * time.Millisecond, Params: params,
	}
}

// record loads and decodes the stored record.
func (e *fleetEnv) record() (*provider.Record, provider.Version) {
	e.t.Helper()
	entry, err := e.backend.Load(ctxFor(e.t, 30*time.Second), e.key)
	if err != nil {
		e.t.Fatalf("load the stored record: %v", err)
	}
	rec, err := provider.DecodeRecord(entry.Value)
	if err != nil {
		e.t.Fatalf("decode the stored record: %v", err)
	}
	return rec, entry.Version
}

// journalEntries lists the journal files left for any key.
func (e *fleetEnv) journalEntries() []string {
	m, _ := filepath.Glob(filepath.Join(e.journal, "*.json"))
	return m
}

// want is what a fleet run must end with.
type want struct {
	// refreshes and attempts are the dev issuer's counters; rejected,
	// reuses and revoked likewise.
	refreshes, attempts, rejected, reuses, revoked uint64
	// generation is the stored generation; -1 means "equal to refreshes".
	generation int64
	// broken: the lineage must end broken (ErrLineageBroken to callers).
	broken bool
	// maxErrors bounds caller errors (-1: any number, for broken lineages).
	maxErrors int64
}

// check asserts the invariants on a finished fleet run: the dev issuer's
// counters, the stored record, what every caller was served, and the
// store-side timeline.
func (e *fleetEnv) check(total *fleet.Report, storeRegressions []string, w want) *provider.Record {
	t := e.t
	t.Helper()
	rec, _ := e.record()
	st := e.srv.Stats()
	t.Logf("dev issuer: %+v; stored generation %d, lease %v, broken %v", st, rec.Pair.Generation, rec.Lease != nil, rec.Broken != nil)
	t.Logf("fleet: %s", total.Summary())
	if w.generation < 0 {
		w.generation = int64(w.refreshes)
	}
	// I1: every refresh token presented once (attempts == refreshes),
	// none rejected, no reuse, no family revoked: except where the test
	// allows one more attempt after a holder died.
	if st.Refreshes != w.refreshes || st.RefreshAttempts != w.attempts || st.Rejected != w.rejected || st.Reuses != w.reuses || st.FamiliesRevoked != w.revoked {
		t.Errorf("dev issuer counters: refreshes=%d attempts=%d rejected=%d reuses=%d familiesRevoked=%d; want %d, %d, %d, %d, %d",
			st.Refreshes, st.RefreshAttempts, st.Rejected, st.Reuses, st.FamiliesRevoked, w.refreshes, w.attempts, w.rejected, w.reuses, w.revoked)
	}
	// I2: every issued pair committed (generation == refreshes on a clean
	// lineage); nothing left in any journal.
	if int64(rec.Pair.Generation) != w.generation {
		t.Errorf("stored generation = %d, want %d (issuer refreshes %d)", rec.Pair.Generation, w.generation, st.Refreshes)
	}
	if rec.Lease != nil && !w.broken {
		t.Errorf("stored record still carries a lease of %s at the end", rec.Lease.Holder)
	}
	if w.broken != (rec.Broken != nil) {
		t.Errorf("stored record lineageBroken marker = %+v, want broken=%v", rec.Broken, w.broken)
	}
	if left := e.journalEntries(); len(left) != 0 {
		t.Errorf("journal entries left behind: %v", left)
	}
	// I3: every served pair valid when served, decodable, not torn.
	if total.Invalid != 0 {
		t.Errorf("%d invalid pairs served, e.g. %v", total.Invalid, total.InvalidSamples)
	}
	if f := total.Forks(); len(f) != 0 {
		t.Errorf("one generation served as different pairs: %v", f)
	}
	// I5: generations only grow, per process and at the store.
	if total.Regressions != 0 {
		t.Errorf("%d calls returned a generation lower than one their process had already served", total.Regressions)
	}
	if len(storeRegressions) != 0 {
		t.Errorf("stored generation decreased: %v", storeRegressions)
	}
	if w.maxErrors >= 0 && total.Errors > w.maxErrors {
		t.Errorf("%d caller errors, want at most %d: %v", total.Errors, w.maxErrors, total.ErrorKinds)
	}
	if w.broken {
		for k := range total.ErrorKinds {
			if !strings.Contains(k, "lineage") {
				t.Errorf("caller error other than lineage broken: %q", k)
			}
		}
	}
	if total.Fatal != "" || total.CloseError != "" {
		t.Errorf("worker failure: fatal %q, close %q", total.Fatal, total.CloseError)
	}
	if !w.broken {
		// Every generation from the first served (0, or 1 when the first
		// pair fell due before the workers began) to the stored one was
		// served, and the last one served is the stored pair.
		gens := total.Generations()
		if len(gens) == 0 || gens[0] > 1 {
			t.Errorf("served generations %v: want them to start at 0 or 1", gens)
		}
		for i, g := range gens {
			if g != gens[0]+uint64(i) {
				t.Errorf("served generations %v: not contiguous up to %d", gens, rec.Pair.Generation)
				break
			}
		}
		fp := provider.Fingerprint(rec.Pair.AuthToken)
		found := false
		for _, p := range total.Pairs {
			if p.Generation == rec.Pair.Generation && p.Fingerprint == fp {
				found = true
			}
		}
		if total.MaxGeneration == rec.Pair.Generation && !found {
			t.Errorf("generation %d was served as a pair other than the stored one", rec.Pair.Generation)
		}
	}
	return rec
}

// logTimeline logs when each generation was first seen stored and served.
func logTimeline(t *testing.T, start time.Time, store []fleet.GenEvent, total *fleet.Report) {
	t.Helper()
	var b strings.Builder
	for _, ev := range store {
		served, _ := total.FirstServed(ev.Generation)
		fmt.Fprintf(&b, " g%d@%.2fs", ev.Generation, ev.At.Sub(start).Seconds())
		if !served.IsZero() {
			fmt.Fprintf(&b, "(served %+.0fms)", float64(served.Sub(ev.At).Milliseconds()))
		}
	}
	t.Logf("store timeline (generation@seconds since start, first served relative to first seen stored):%s", b.String())
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	prefix = strings.NewReplacer("/", "-", " ", "_").Replace(prefix)
	return prefix + "-" + hex.EncodeToString(b)
}

// requireMoto fails the test unless moto_server is configured.
func requireMoto(t testing.TB) {
	t.Helper()
	if os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER") == "" {
		t.Fatal("this test needs moto_server, found through AWS_ENDPOINT_URL_SECRETS_MANAGER, which is unset: " +
			"run it with `scripts/testenv.sh go test -race ./refresh/` (it starts moto_server and the Vault test server)")
	}
}

// vaultRoot returns a root-token client for the Vault test server.
func vaultRoot(t testing.TB) *api.Client {
	t.Helper()
	addr, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if addr == "" || token == "" {
		t.Fatal("this test needs a real Vault server, found through VAULT_ADDR and VAULT_TOKEN, which are unset: " +
			"run it with `scripts/testenv.sh go test -race ./refresh/`, which builds and starts bin/vaultdev")
	}
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault client: %v", err)
	}
	c.SetToken(token)
	return c
}

// mountKV2 mounts a fresh KV v2 engine for one test and returns its path.
func mountKV2(t testing.TB) string {
	t.Helper()
	c := vaultRoot(t)
	mount := "credhelper-fleet/" + randomName("kv")
	if err := c.Sys().MountWithContext(ctxFor(t, 30*time.Second), mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount KV v2 at %s: %v", mount, err)
	}
	t.Cleanup(func() { _ = c.Sys().Unmount(mount) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Logical().ReadWithContext(ctxFor(t, 10*time.Second), mount+"/config")
		if err == nil {
			return mount
		}
		if time.Now().After(deadline) {
			t.Fatalf("KV v2 mount %s not ready: %v", mount, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buildPlugins builds the example plugins (examples/fileplugin and
// examples/devissuerplugin) into a test directory and records their paths
// and SHA-256 checksums in params.
func buildPlugins(t *testing.T, params map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for n, key := range map[string]string{"fileplugin": "filePlugin", "devissuerplugin": "issuerPlugin"} {
		path := filepath.Join(dir, n)
		out, err := exec.Command("go", "build", "-o", path, "github.com/credhelper/credhelper/examples/"+n).CombinedOutput()
		if err != nil {
			t.Fatalf("go build examples/%s: %v: %s", n, err, out)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		params[key], params[key+"Sum"] = path, hex.EncodeToString(sum[:])
	}
}

// decodeJournal reads the pair a dead process journaled for the key and
// returns its generation and auth-token fingerprint.
func decodeJournal(t *testing.T, path string) (uint64, string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read journal %s: %v", path, err)
	}
	var jr struct {
		Record json.RawMessage `json:"record"`
	}
	if err := json.Unmarshal(data, &jr); err != nil {
		t.Fatalf("journal %s: %v", path, err)
	}
	rec, err := provider.DecodeRecord(jr.Record)
	if err != nil {
		t.Fatalf("journal %s record: %v", path, err)
	}
	return rec.Pair.Generation, provider.Fingerprint(rec.Pair.AuthToken)
}
