package faults_test

// One cell of the matrix: a store on one backend, a dev issuer behind a
// proxy, a fleet of worker processes, and the checks of I1-I5.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/vault/api"

	"github.com/credhelper/credhelper/backends/awssm"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/backends/vault"
	"github.com/credhelper/credhelper/internal/faults"
	"github.com/credhelper/credhelper/internal/fleet"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/oauth2"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// timing scales the engine down to pairs of seconds.
type timing = fleet.Timing

// base: 24-second pairs refreshed in their last 12s, a 4s lease and a 1.5s
// issuer timeout: a lease outlives both issuer calls the holder may make,
// and the pair being refreshed outlives any fault a cell holds.
var base = timing{
	Lifetime:      24 * time.Second,
	Fraction:      0.5,
	Floor:         2 * time.Second,
	MinValidity:   500 * time.Millisecond,
	Lease:         4 * time.Second,
	IssuerTimeout: 1500 * time.Millisecond,
	Skew:          250 * time.Millisecond,
	Retry:         100 * time.Millisecond,
	MaxRetry:      time.Second,
}

// cellOpts choose a cell's servers.
type cellOpts struct {
	// ownStore starts a moto_server or Vault server of the cell's own,
	// which it may kill or seal.
	ownStore bool
	// lifetime, when set, replaces the timing's pair lifetime.
	lifetime time.Duration
	// due mints the first pair half its lifetime in the past, so that
	// every instance finds it due at once and they contend for the
	// refresh, as a fleet whose pair enters its window does.
	due bool
	dev []func(*dev.Options)
	// protocol is the dev issuer's protocol the workers speak: "" or
	// "momento" (gRPC), "oauth2", or "oauth2+introspection" (the engine
	// asks the RFC 7662 endpoint before it takes over an expired claim).
	protocol string
	// bootstrap gives every worker an Options.Bootstrap that generates a
	// first pair over the dev issuer's gRPC GenerateApiToken with its
	// session token, so that a lost lineage heals.
	bootstrap bool
	// tune adjusts the cell's engine timing.
	tune func(*timing)
}

// cell is one fault on one backend.
type cell struct {
	t       *testing.T
	sc      scale
	tm      timing
	backend string
	dir     string
	ctx     context.Context

	dev      *dev.Server
	devProxy *faults.Proxy

	store    provider.Backend // this process's own handle, bypassing faults
	key      string
	credDir  string // file backend: the directory holding key
	journal  string
	params   map[string]string
	proxies  []*faults.Proxy // AWS and Vault: one per instance index
	switches []faults.Switch // file: one per instance index
	moto     *faults.Moto
	vault    *faults.Vault
	sm       *secretsmanager.Client // AWS: direct client, for restores

	due bool
	// protocol and bootstrap are the cellOpts'.
	protocol  string
	bootstrap bool
	late      *lateness
	// lateMax is the timer lateness measured during the cell; problems
	// are the invariant and outcome failures assess found.
	lateMax  time.Duration
	problems []string

	// Set by the scenario: the instance holding the claim when the fault
	// began, the stored generation then, and when the fault ended.
	holder   int
	faultGen uint64
	liftedAt time.Time

	// revoked records when the dev issuer revoked a token family (the
	// instant a lineage broke).
	revoked *revocations
}

// healBackoff is the workers' Options.HealBackoff in heal cells (none of
// their bootstraps is meant to fail).
const healBackoff = 2 * time.Second

// bootstrapLifetime is the lifetime of a healed lineage's first pair:
// short enough that the long form sees the healed chain refreshed.
const bootstrapLifetime = 10 * time.Second

const instances = 6 // proxies and switches per cell: the most processes any fleet uses

func newCell(t *testing.T, sc scale, backend string, o cellOpts) *cell {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	dir := t.TempDir()
	c := &cell{t: t, sc: sc, tm: base, due: o.due, late: measureLateness(), backend: backend, dir: dir, ctx: ctx, journal: filepath.Join(dir, "journal"), params: map[string]string{},
		revoked: &revocations{}, protocol: o.protocol, bootstrap: o.bootstrap}
	if o.lifetime != 0 {
		c.tm.Lifetime = o.lifetime
	}
	if o.tune != nil {
		o.tune(&c.tm)
	}
	var past atomic.Int64 // how far in the past the dev issuer mints
	clock := func(o *dev.Options) {
		o.Clock = func() time.Time { return time.Now().Add(-time.Duration(past.Load())) }
		o.Logger = slog.New(c.revoked)
	}
	srv, err := dev.Listen(ctx, "127.0.0.1:0", append([]func(*dev.Options){clock}, o.dev...)...)
	if err != nil {
		t.Fatalf("dev issuer: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	c.dev = srv
	if c.devProxy, err = faults.NewProxy(srv.Addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.devProxy.Close() })
	if err := os.MkdirAll(c.journal, 0o700); err != nil {
		t.Fatal(err)
	}
	c.tm.Params(c.params)
	c.params["backend"], c.params["devAddr"], c.params["journal"] = backend, c.devProxy.Addr(), c.journal
	c.params["pause"] = filepath.Join(dir, "pause")
	switch o.protocol {
	case "", "momento":
	case "oauth2", "oauth2+introspection":
		c.params["protocol"], c.params["clientID"], c.params["clientSecret"] = "oauth2", srv.ClientID(), srv.ClientSecret()
		if o.protocol == "oauth2+introspection" {
			c.params["introspect"] = "1"
		}
	default:
		t.Fatalf("unknown protocol %q", o.protocol)
	}
	if o.bootstrap {
		c.params["bootstrap"], c.params["sessionToken"] = "momento", srv.SessionToken()
		c.params["bootstrapLifetime"], c.params["healBackoff"] = bootstrapLifetime.String(), healBackoff.String()
	}
	if err := os.Mkdir(c.params["pause"], 0o700); err != nil {
		t.Fatal(err)
	}

	switch backend {
	case "file":
		c.credDir = filepath.Join(dir, "cred")
		if err := os.Mkdir(c.credDir, 0o700); err != nil {
			t.Fatal(err)
		}
		c.key = filepath.Join(c.credDir, "cred.json")
		b, err := file.New()
		if err != nil {
			t.Fatal(err)
		}
		c.store = b
		for i := range instances {
			sw := faults.Switch(filepath.Join(dir, fmt.Sprintf("switch.%d", i)))
			c.switches = append(c.switches, sw)
			c.params[fmt.Sprintf("switch.%d", i)] = string(sw)
		}
	case "awssm":
		endpoint := os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
		if o.ownStore {
			m, err := faults.StartMoto(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Kill() })
			c.moto, endpoint = m, m.URL()
		}
		if endpoint == "" {
			t.Fatal("this test needs moto_server, found through AWS_ENDPOINT_URL_SECRETS_MANAGER, which is unset: " +
				"run it with `scripts/testenv.sh go test ./faults/` or `make faults` (they start moto_server and the Vault test server)")
		}
		c.key = "credhelper-faults/" + randomName(t.Name())
		b, err := awssm.NewFromConfig(ctx, func(o *awssm.Options) { o.EndpointURL = endpoint })
		if err != nil {
			t.Fatal(err)
		}
		c.store = b
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.sm = secretsmanager.NewFromConfig(cfg, func(so *secretsmanager.Options) { so.BaseEndpoint = aws.String(endpoint) })
		c.proxyStore(endpoint)
	case "vault":
		addr, token := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
		if o.ownStore {
			bin, err := faults.VaultBinary(".")
			if err != nil {
				t.Fatal(err)
			}
			v, err := faults.StartVault(ctx, bin, dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { v.Close() })
			c.vault, addr, token = v, v.Addr, v.Token
		}
		if addr == "" || token == "" {
			t.Fatal("this test needs a real Vault server, found through VAULT_ADDR and VAULT_TOKEN, which are unset: " +
				"run it with `scripts/testenv.sh go test ./faults/` or `make faults`, which build and start bin/vaultdev")
		}
		c.key = mountKV2(ctx, t, addr, token) + "/faults/" + randomName(t.Name())
		b, err := vault.NewFromEnv(func(o *vault.Options) { o.Address, o.Token = addr, token })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		c.store = b
		c.params["vaultToken"] = token
		c.proxyStore(addr)
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	c.params["key"] = c.key

	if o.due {
		past.Store(int64(c.tm.Lifetime / 2))
	}
	first, err := srv.Mint(provider.GenerateRequest{Lifetime: c.tm.Lifetime})
	past.Store(0)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	value, err := (&provider.Record{Pair: first}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.store.CompareAndSwap(c.ctxFor(30*time.Second), c.key, "", value); err != nil {
		t.Fatalf("store the first pair: %v", err)
	}
	return c
}

// proxyStore puts one proxy per instance in front of the store at
// endpoint (a URL).
func (c *cell) proxyStore(endpoint string) {
	u, err := url.Parse(endpoint)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := range instances {
		p, err := faults.NewProxy(u.Host)
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { p.Close() })
		c.proxies = append(c.proxies, p)
		c.params[fmt.Sprintf("endpoint.%d", i)] = p.URL()
	}
}

// setStore switches the store fault of the given instances (all when
// none are named).
func (c *cell) setStore(m faults.Mode, d time.Duration, which ...int) {
	c.t.Helper()
	if len(which) == 0 {
		for i := range instances {
			which = append(which, i)
		}
	}
	for _, i := range which {
		var err error
		if c.backend == "file" {
			err = c.switches[i].Set(m, d)
		} else {
			err = c.proxies[i].Set(m, d)
		}
		if err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *cell) ctxFor(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(c.ctx, d)
	c.t.Cleanup(cancel)
	return ctx
}

// spec is a fleet of procs processes that stop once served generation
// gens, with the cell's parameters plus extra.
func (c *cell) spec(procs, goroutines int, gens uint64, d time.Duration, extra map[string]string) fleet.Spec {
	params := make(map[string]string, len(c.params)+len(extra))
	for k, v := range c.params {
		params[k] = v
	}
	for k, v := range extra {
		params[k] = v
	}
	return fleet.Spec{
		Command:   func(int) *exec.Cmd { return exec.Command(os.Args[0], "-test.run=^$") },
		Processes: procs, Goroutines: goroutines, Generations: gens, Duration: d,
		MinValidity: c.tm.MinValidity, Interval: 5 * time.Millisecond, CallTimeout: callTimeout,
		StartDelay: 500 * time.Millisecond, Params: params,
	}
}

// callTimeout bounds each worker's Credential call; I4 says no call
// lasts longer.
const callTimeout = 2 * time.Second

// schedulingSlack is how much later than its deadline a call may return
// before I4 counts it as broken, on top of the timer lateness measured in
// this process during the cell (the machine may be overloaded, and the
// race detector slows every process): a caller stuck behind the refresh
// would wait for a faulted store or issuer call, 5s or more in these
// cells, however idle the machine.
const schedulingSlack = time.Second

// lateness measures how late this process's timers fire, as an estimate
// of how late the workers' fire on the same machine.
type lateness struct {
	max  atomic.Int64
	stop chan struct{}
}

func measureLateness() *lateness {
	l := &lateness{stop: make(chan struct{})}
	go func() {
		const tick = 50 * time.Millisecond
		for {
			t0 := time.Now()
			select {
			case <-l.stop:
				return
			case <-time.After(tick):
			}
			if late := int64(time.Since(t0) - tick); late > l.max.Load() {
				l.max.Store(late)
			}
		}
	}()
	return l
}

// Stop ends the measurement and returns the largest lateness seen.
func (l *lateness) Stop() time.Duration {
	close(l.stop)
	return time.Duration(l.max.Load())
}

// record loads the stored record through the cell's own handle.
func (c *cell) record() (*provider.Record, provider.Version) {
	c.t.Helper()
	entry, err := c.store.Load(c.ctxFor(30*time.Second), c.key)
	if err != nil {
		c.t.Fatalf("load the stored record: %v", err)
	}
	rec, err := provider.DecodeRecord(entry.Value)
	if err != nil {
		c.t.Fatalf("decode the stored record: %v", err)
	}
	return rec, entry.Version
}

// journalEntries lists the journal files left (not those moved aside as
// corrupt).
func (c *cell) journalEntries() []string {
	m, _ := filepath.Glob(filepath.Join(c.journal, "*.json"))
	return m
}

// want is how a cell must end.
type want struct {
	// lost: the protocol cannot keep the lineage (by design): exactly
	// one spent refresh token was presented again, rejected, the issuer
	// revoked the family, the record is marked broken and callers got
	// provider.ErrLineageBroken (unless healed).
	lost bool
	// lostPairs is how many pairs the issuer minted that could never be
	// committed (lost cells).
	lostPairs uint64
	// expired: as lost, but the fleet never learns the issuer's answer, so
	// callers end with provider.ErrExpired instead of ErrLineageBroken,
	// and the holder may present its maybe-spent token more than once.
	expired bool
	// healed: the lineage was lost (lost, or lostPairs without a second
	// presentation) and the fleet healed it from its bootstrap: exactly
	// one bootstrap fleet-wide, one healed event, and the new chain
	// intact at the end.
	healed bool
	// renewed: the holder must have renewed its lease at least once.
	renewed bool
	// asked: an instance taking over an expired claim must have asked the
	// issuer (introspection) and learned the token was spent.
	asked bool
	// note is added to the row's result.
	note string
	// corrupt is how many journal entries must have been moved aside.
	corrupt int
	// degradedI2 explains why I2's "journaled before use" could not hold
	// (the journal itself was the fault) although nothing was lost.
	degradedI2 string
	// tolerateI1 records, without failing the test, a double presentation
	// the cell provokes on purpose (a misconfiguration, or a holder that
	// cannot be told from a dead one).
	tolerateI1 bool
	// maxRejected bounds the rejections of a lost cell (default 1: the one
	// extra presentation).
	maxRejected uint64
	// either: the outcome is a race the cell cannot steer; it passes as
	// intact, or as lost through I1's exception (then tolerated and
	// reported).
	either bool
	// quietCallers: callers are served cached pairs and need not see a
	// lost lineage within the run (the refreshes are forced).
	quietCallers bool
	// defectI1, when set, names the known engine defect behind the one
	// extra presentation of a lost cell: recorded in the row, not failed.
	defectI1 string
}

// assess checks I1-I5 on a finished cell and returns its row. problems
// are added to the row and fail the test unless the cell expects them.
func (c *cell) assess(total *fleet.Report, storeRegress []string, store []fleet.GenEvent, w want) faults.Row {
	t := c.t
	t.Helper()
	if total == nil { // the run was aborted; its problem is recorded
		c.lateMax = c.late.Stop()
		return faults.Row{Backend: c.backend, Result: "aborted: " + strings.Join(c.problems, "; "), Invariants: "NO: not established"}
	}
	rec, _ := c.record()
	st := c.dev.Stats()
	// Generates counts the cell's first pair and every bootstrap.
	heals := st.Generates - 1
	if w.either && st.Reuses > 0 {
		w.lost, w.tolerateI1 = true, true
		w.maxRejected = max(w.maxRejected, 3)
		w.lostPairs = st.Refreshes + heals - rec.Pair.Generation
		w.note = strings.TrimPrefix(w.note+"; the outcome is a race, lost in this run", "; ")
		w = c.healing(w)
	}
	if w.maxRejected == 0 {
		w.maxRejected = 1
	}
	t.Logf("dev issuer: %+v; stored generation %d, lease %v, broken %v, healed %v", st, rec.Pair.Generation, rec.Lease != nil, rec.Broken != nil, rec.Healed != nil)
	t.Logf("fleet: %s", total.Summary())
	if len(total.ErrorKinds) > 0 {
		t.Logf("caller errors: %v", total.ErrorKinds)
	}
	row := faults.Row{Backend: c.backend, Spent: st.Refreshes, Presented: st.RefreshAttempts, Rejected: st.Rejected}
	var broke []string // invariant violations
	fail := func(inv, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		broke = append(broke, inv+": "+msg)
		if inv == "I1" && w.tolerateI1 {
			t.Logf("%s (provoked by this cell): %s", inv, msg)
			return
		}
		c.errorf("%s: %s", inv, msg)
	}
	// The issuer itself says whether the stored refresh token can still
	// be spent (RFC 7662 introspection, asked after the counters above
	// were read): a lineage is intact when it can, the record is not
	// marked broken and the stored pair is valid. The last pair minted,
	// stored with no broken mark although the issuer revoked its family,
	// was revived: committed (and served) after the rejection that
	// revoked the family.
	active := c.storedActive(rec.Pair)
	revived := st.FamiliesRevoked > 0 && rec.Broken == nil && !active && rec.Pair.Generation == st.Refreshes+heals
	intact := rec.Broken == nil && active && rec.Pair.ValidUntil.After(time.Now())
	if revived && w.lost {
		w.lostPairs = st.Refreshes + heals - rec.Pair.Generation // the holder's pair was committed after all
	}

	// I1: each refresh token presented once.
	switch {
	case w.lost:
		if st.Reuses != 1 || st.Rejected < 1 || st.Rejected > w.maxRejected || st.FamiliesRevoked != 1 {
			fail("I1", "reuses=%d rejected=%d familiesRevoked=%d; want exactly one extra presentation of the spent token, rejected (1, 1-%d, 1)", st.Reuses, st.Rejected, st.FamiliesRevoked, w.maxRejected)
		}
		switch {
		case w.defectI1 != "":
			broke = append(broke, "I1: "+w.defectI1)
			t.Logf("known engine defect: I1: %s", w.defectI1)
		case w.tolerateI1:
			fail("I1", "a spent refresh token was presented again by another instance while its holder was alive")
		}
	case w.expired:
		if st.Refreshes != 1 || st.FamiliesRevoked > 1 {
			fail("I1", "refreshes=%d familiesRevoked=%d; want the one token spent once, then only its holder presenting it again", st.Refreshes, st.FamiliesRevoked)
		}
	default:
		if st.Reuses != 0 || st.Rejected != 0 || st.FamiliesRevoked != 0 || st.RefreshAttempts != st.Refreshes+st.Faults {
			fail("I1", "attempts=%d refreshes=%d faults=%d reuses=%d rejected=%d familiesRevoked=%d; want every token presented once (attempts = refreshes + injected faults) and nothing rejected",
				st.RefreshAttempts, st.Refreshes, st.Faults, st.Reuses, st.Rejected, st.FamiliesRevoked)
		}
	}
	// I2: every issued pair committed (or, lost cells, exactly the pairs
	// the design cannot save), every bootstrapped pair too (a heal numbers
	// its pair N+2, leaving N+1 to the pair that was lost); nothing left
	// in a journal.
	wantGen := st.Refreshes + 2*heals - w.lostPairs
	if heals > 0 {
		// A cut-off holder's pair orphaned by the heal is superseded,
		// never committed.
		wantGen -= uint64(total.Events["orphaned"])
	}
	if w.expired {
		wantGen = 0
	}
	if rec.Pair.Generation != wantGen {
		fail("I2", "stored generation %d, want %d (issuer minted %d pairs and bootstrapped %d, each numbered N+2; %d lost by design)", rec.Pair.Generation, wantGen, st.Refreshes, heals, w.lostPairs)
	}
	if left := c.journalEntries(); len(left) != 0 {
		fail("I2", "journal entries left behind: %v", left)
	}
	if m, _ := filepath.Glob(filepath.Join(c.journal, "*.corrupt")); len(m) != w.corrupt {
		fail("I2", "%d journal entries moved aside as corrupt, want %d", len(m), w.corrupt)
	}
	if (!w.lost && !w.expired) || w.healed {
		if rec.Lease != nil {
			fail("I2", "stored record still carries a lease of %s", rec.Lease.Holder)
		}
		if rec.Broken != nil {
			fail("I2", "stored record marked broken: %+v", rec.Broken)
		}
	}
	if revived {
		// After another instance presented a spent token and the issuer,
		// detecting the reuse, revoked the family, a pair of that family
		// still ended up stored and served: the holder's deferred commit
		// over the broken mark, or the rejected instance adopting the
		// holder's newer generation. The pair is dead at the issuer. See
		// engineBrokenFix.
		msg := fmt.Sprintf("generation %d, of the family the issuer revoked on the spent token's reuse, stayed stored and was served (revived lineage: a deferred commit over the broken mark, or the rejected instance adopting it)", rec.Pair.Generation)
		broke = append(broke, "I3: "+msg)
		if engineBrokenFix {
			c.errorf("I3: %s", msg)
		} else {
			t.Logf("after a lost race, by design (see engineBrokenFix): I3: %s", msg)
		}
	}
	// I3: every served pair valid, decodable, one pair per generation.
	if total.Invalid != 0 {
		if margin, ok := boundaryOnly(total, c.tm.MinValidity); ok {
			// The engine checks MinValidity at its own instant, with no
			// margin; the caller, a moment later, has a little less. See
			// engineMarginFix.
			msg := fmt.Sprintf("%d pairs served with up to %v less than MinValidity left (the engine's check has no margin for the time until the caller has the pair)", total.Invalid, margin)
			broke = append(broke, "I3: "+msg)
			if engineMarginFix {
				c.errorf("I3: %s", msg)
			} else {
				t.Logf("known engine defect: I3: %s", msg)
			}
		} else {
			fail("I3", "%d invalid pairs served, e.g. %v", total.Invalid, total.InvalidSamples)
		}
	}
	if f := total.Forks(); len(f) != 0 {
		if gens := forkedGenerations(total); w.healed && !engineHealGenFix && len(gens) == 1 && gens[0] == c.faultGen+1 {
			// The holder cut off from the store served its new pair from
			// memory as generation N+1 while the others, having presented
			// its spent token, healed the lineage as generation N+1 too.
			// See engineHealGenFix.
			msg := fmt.Sprintf("generation %d served as two different pairs: the cut-off holder's orphaned pair, served from memory, and the healed lineage's first pair, which the heal numbers N+1 as well (engine defect, see engineHealGenFix)", gens[0])
			broke = append(broke, "I3: "+msg)
			t.Logf("known engine defect: I3: %s", msg)
		} else {
			fail("I3", "one generation served as different pairs: %v", f)
		}
	}
	// I4: no caller waited past its own deadline.
	late := c.late.Stop()
	c.lateMax = late
	for name, h := range map[string]*fleet.Histogram{"waited": &total.Waited, "cached": &total.Cached, "failed": &total.Failed} {
		if h.Max() > callTimeout+schedulingSlack+2*late {
			fail("I4", "a %s call took %v, past its %v deadline (timers here ran up to %v late)", name, h.Max(), callTimeout, late)
		}
	}
	// I5: generations only grow, in every process and at the store.
	if total.Regressions != 0 {
		fail("I5", "%d calls returned a generation lower than one their process had served", total.Regressions)
	}
	if len(storeRegress) != 0 {
		fail("I5", "stored generation decreased: %v", storeRegress)
	}
	if total.Fatal != "" {
		c.errorf("worker failure: %s", total.Fatal)
	}

	// The protocol's steps the cell is about.
	var notes []string
	if n := total.Events[string(refresh.EventLeaseRenewed)]; w.renewed {
		if n == 0 {
			c.errorf("no lease renewal: the holder's lease was never extended")
		}
		notes = append(notes, fmt.Sprintf("the holder renewed its lease %d time(s)", n))
	}
	if n := total.Events[string(refresh.EventSpentElsewhere)]; n > 0 || w.asked {
		if w.asked && (n == 0 || st.Introspections == 0) {
			c.errorf("no takeover asked the issuer (spent_elsewhere %d, introspections %d)", n, st.Introspections)
		}
		notes = append(notes, fmt.Sprintf("%d takeover(s) asked the issuer (%d introspections), learned the token was spent and waited for the previous holder's commit", n, st.Introspections))
	}
	if n := total.Events[string(refresh.EventLeaseLost)]; n > 0 {
		notes = append(notes, fmt.Sprintf("%d lease(s) lost", n))
	}

	// The outcome callers see.
	switch {
	case w.healed:
		healedEv, failedEv := total.Events[string(refresh.EventHealed)], total.Events[string(refresh.EventHealFailed)]
		if !intact {
			c.errorf("the lineage was not healed: stored generation %d, broken %+v, refresh token active at the issuer %v", rec.Pair.Generation, rec.Broken, active)
		}
		if heals != 1 || healedEv != 1 || failedEv != 0 {
			c.errorf("%d bootstraps at the issuer, %d healed and %d heal_failed events; want exactly one bootstrap, healed once", heals, healedEv, failedEv)
		}
		d, ok := c.healTime(store, st.FamiliesRevoked > 0)
		if !ok {
			c.errorf("no healed generation stored after the lineage broke")
		}
		row.Healed, row.Recover = true, d
		how := "lineage lost"
		if w.tolerateI1 {
			how = "lineage lost (another instance took the live holder for dead and presented its spent token)"
		}
		row.Result = fmt.Sprintf("%s, then healed: one instance re-bootstrapped (1 bootstrap fleet-wide) and the others adopted it; generation %d stored; %d of %d calls failed", how, rec.Pair.Generation, total.Errors, total.Calls)
		if r := c.recovery(store); r > 0 {
			row.Result += fmt.Sprintf("; the healed chain was stored %.1fs after the fault ended", r.Seconds())
		}
	case w.lost:
		if intact {
			c.errorf("the lineage survived; this cell expects it lost by design")
		}
		if total.LineageBroken == 0 && !w.quietCallers && !revived {
			c.errorf("no caller got ErrLineageBroken (errors: %v)", total.ErrorKinds)
		}
		row.Unrecovered = true
		if w.tolerateI1 {
			row.Result = fmt.Sprintf("lineage lost: another instance took the live holder for dead and presented its spent token; callers get ErrLineageBroken (%d calls)", total.LineageBroken)
		} else {
			row.Result = fmt.Sprintf("lineage lost by design; callers get ErrLineageBroken (%d calls)", total.LineageBroken)
		}
	case w.expired:
		if intact {
			c.errorf("the lineage survived; this cell expects it lost")
		}
		row.Unrecovered = true
		row.Result = "lineage lost: the issuer never answers within IssuerTimeout, the hard ceiling of one call; the holder keeps its claim and retries the same token; callers get ErrExpired once the pair runs out"
	default:
		if !intact {
			c.errorf("lineage not intact: stored generation %d, broken %+v, refresh token active at the issuer %v", rec.Pair.Generation, rec.Broken, active)
		}
		// Served generations may skip one: a generation can be committed
		// and superseded before any caller asks (a replayed journal entry
		// whose pair is already due is refreshed at once), and a heal
		// numbers its pair N+2. That no issued pair was lost is I2's
		// check above: the stored generation counts every pair minted.
		row.Result = fmt.Sprintf("recovered; generation %d stored; %d of %d calls failed", rec.Pair.Generation, total.Errors, total.Calls)
		if heals > 0 {
			// Race outcome of a cell with a bootstrap: the stored pair
			// expired while its holder was cut off, so another instance
			// could not refresh it (Momento refreshes only a valid key;
			// nothing was presented) and re-bootstrapped instead.
			healedEv := total.Events[string(refresh.EventHealed)]
			if heals != 1 || healedEv != 1 {
				c.errorf("%d bootstraps at the issuer and %d healed events without a lost lineage; want at most one, healed once", heals, healedEv)
			}
			row.Healed = true
			row.Result = fmt.Sprintf("recovered by a heal: the stored pair expired while its holder was cut off, another instance re-bootstrapped without presenting any token and the holder's pair was orphaned (%d); generation %d stored; %d of %d calls failed",
				total.Events["orphaned"], rec.Pair.Generation, total.Errors, total.Calls)
		}
		row.Recover = c.recovery(store)
	}
	for _, n := range append(notes, w.note) {
		if n != "" {
			row.Result += "; " + n
		}
	}
	row.Intact = intact
	switch {
	case len(broke) > 0:
		row.Invariants = "NO: " + strings.Join(broke, "; ")
	case w.degradedI2 != "":
		row.Invariants = "yes, except I2's journal-before-use: " + w.degradedI2
	default:
		row.Invariants = "yes"
	}
	return row
}

// forkedGenerations lists the generations served as more than one pair.
func forkedGenerations(total *fleet.Report) []uint64 {
	seen := map[uint64]map[string]bool{}
	for _, p := range total.Pairs {
		if seen[p.Generation] == nil {
			seen[p.Generation] = map[string]bool{}
		}
		seen[p.Generation][p.Fingerprint] = true
	}
	var gens []uint64
	for g, fps := range seen {
		if len(fps) > 1 {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens
}

// storedActive asks the dev issuer, through its RFC 7662 introspection
// endpoint, whether p's refresh token can still be spent.
func (c *cell) storedActive(p provider.Pair) bool {
	c.t.Helper()
	in, err := oauth2.New(c.dev.TokenURL(), func(o *oauth2.Options) {
		o.ClientID, o.ClientSecret, o.IntrospectionURL = c.dev.ClientID(), c.dev.ClientSecret(), c.dev.IntrospectionURL()
	})
	if err != nil {
		c.t.Fatal(err)
	}
	active, err := in.RefreshTokenActive(c.ctxFor(10*time.Second), p)
	if err != nil {
		c.t.Fatalf("ask the dev issuer about the stored refresh token: %v", err)
	}
	return active
}

// healTime is how long after the lineage broke the healed generation was
// stored: from the dev issuer's revocation of the family when revoked
// (the rejected second presentation), else from the end of the fault (a
// taker that asked the issuer and presented nothing), to the first newer
// generation the store held afterwards (polled every 100ms).
func (c *cell) healTime(store []fleet.GenEvent, revoked bool) (time.Duration, bool) {
	from := c.liftedAt
	if revoked {
		at, ok := c.revoked.first()
		if !ok {
			c.errorf("the dev issuer revoked a family but logged no revocation")
			return 0, false
		}
		from = at
	}
	if from.IsZero() {
		c.errorf("a heal cell without a moment the lineage broke")
		return 0, false
	}
	var before uint64
	for _, ev := range store {
		if !ev.At.After(from) {
			before = ev.Generation
			continue
		}
		if ev.Generation > before {
			return ev.At.Sub(from), true
		}
	}
	return 0, false
}

// revocations is a slog.Handler for the dev issuer's log that records
// when it revoked a token family on a spent token's reuse.
type revocations struct {
	mu sync.Mutex
	at []time.Time
}

// Enabled takes every level: the revocation is logged at warn level.
func (r *revocations) Enabled(context.Context, slog.Level) bool { return true }

// Handle records the time of a revocation.
func (r *revocations) Handle(_ context.Context, rec slog.Record) error {
	if strings.Contains(rec.Message, "family revoked") {
		r.mu.Lock()
		r.at = append(r.at, rec.Time)
		r.mu.Unlock()
	}
	return nil
}

// WithAttrs keeps the handler: attributes do not matter here.
func (r *revocations) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup keeps the handler.
func (r *revocations) WithGroup(string) slog.Handler { return r }

func (r *revocations) first() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.at) == 0 {
		return time.Time{}, false
	}
	return r.at[0], true
}

// errorf records a failed check; the test reports it unless the cell is
// run again (see TestFaultMatrix).
func (c *cell) errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.t.Log("check failed: " + msg)
	c.problems = append(c.problems, msg)
}

// boundaryOnly reports whether every invalid pair served was invalid only
// for having had a hair less than MinValidity left (under 20ms less), and
// the largest shortfall.
func boundaryOnly(total *fleet.Report, minValidity time.Duration) (time.Duration, bool) {
	for _, s := range total.InvalidSamples {
		if !strings.Contains(s, "under MinValidity") {
			return 0, false
		}
	}
	var short time.Duration
	n := int64(0)
	for _, p := range total.Pairs {
		if p.MinLeft < minValidity {
			short = max(short, minValidity-p.MinLeft)
			n++
		}
	}
	return short, n > 0 && short < 20*time.Millisecond
}

// recovery is how long after the fault ended the store first held a
// generation newer than the one it held when the fault began.
func (c *cell) recovery(store []fleet.GenEvent) time.Duration {
	for _, ev := range store {
		if ev.Generation > c.faultGen {
			if c.liftedAt.IsZero() || !ev.At.After(c.liftedAt) {
				return 0
			}
			return ev.At.Sub(c.liftedAt)
		}
	}
	return 0
}

// restoreAWS recreates the secret on a restarted (empty) moto_server with
// the value and version id it had, as a durable service would still hold
// it.
func (c *cell) restoreAWS(value []byte, version provider.Version) error {
	_, err := c.sm.CreateSecret(c.ctxFor(30*time.Second), &secretsmanager.CreateSecretInput{
		Name: aws.String(c.key), SecretString: aws.String(string(value)), ClientRequestToken: aws.String(string(version)),
	})
	return err
}

// mountKV2 mounts a fresh KV v2 engine and returns its path.
func mountKV2(ctx context.Context, t *testing.T, addr, token string) string {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cl, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault client: %v", err)
	}
	cl.SetToken(token)
	mount := "credhelper-faults/" + randomName("kv")
	if err := cl.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount KV v2 at %s: %v", mount, err)
	}
	t.Cleanup(func() { _ = cl.Sys().Unmount(mount) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := cl.Logical().ReadWithContext(ctx, mount+"/config")
		if err == nil {
			return mount
		}
		if time.Now().After(deadline) {
			t.Fatalf("KV v2 mount %s not ready: %v", mount, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	prefix = strings.NewReplacer("/", "-", " ", "_", "(", "", ")", "", "±", "pm").Replace(prefix)
	return prefix + "-" + hex.EncodeToString(b)
}

var errNoPause = errors.New("no instance reached the pause")
