package model

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	full       = flag.Bool("model.full", false, "run the full model checks with bigger bounds (make model)")
	reportPath = flag.String("model.report", "", "write the runs as Markdown to this file (make model: results.md)")
)

// Outcomes a run may expect besides the tag of an assertion in
// refresh.pml (I1, I2, I3, I5, KEEP, BROKEN, MODEL).
const (
	pass  = "no violation"
	cycle = "LIVE" // an acceptance cycle: the liveness claim fails
	stuck = "END"  // an invalid end state: a process blocked for ever
)

// run is one verification of refresh.pml.
type run struct {
	name  string
	defs  []string // spin -D switches
	claim string   // LTL claim of a liveness run; "" for a safety run
	want  string   // pass, or the outcome a counterexample must show
	full  bool     // only in the full run (make model)
	fast  bool     // compile pan without optimisation: the compile would dominate
	why   string   // what the run shows
}

// short is the table `go test` runs: the real model at a bound that
// finishes in about a minute, the limits of today's protocol and the
// mutants.
var short = []run{
	// The protocol, with every fault the model has, at one generation.
	{name: "safety/today", defs: []string{"MAXGEN=1", "LOSTACK=1", "SKEWAHEAD=1"}, want: pass,
		why: "I1-I5 with one crash, two store and one issuer fault, lost store acknowledgements"},
	{name: "safety/renewal+introspection+healing", defs: []string{"MAXGEN=1", "RENEWAL=1", "INTROSPECTION=1", "HEALING=1", "MAXFAM=3", "SFAULTS=1", "SKEWAHEAD=1"}, want: pass,
		why: "I1-I5 with the next protocol steps on"},
	{name: "keep/slow issuer, renewal", defs: []string{"MAXGEN=1", "SLOWISS=1", "KEEP=1", "MAXCRASH=0", "IFAULTS=0", "SFAULTS=2", "RENEWAL=1"}, want: pass, fast: true,
		why: "an issuer slower than lease + skew: renewal keeps the lineage with one presentation, through two store faults"},
	{name: "keep/holder cut off past the lease, introspection", defs: []string{"MAXGEN=1", "MAXOUT=1", "OUTMAX=5", "MAXCRASH=0", "IFAULTS=0", "SFAULTS=0", "INTROSPECTION=1", "KEEP=1"}, want: pass, fast: true,
		why: "the holder cut off from the store for lease + skew: the taker asks, waits, and the holder's pair is committed"},
	{name: "live/every instance finishes", claim: "done", defs: []string{"MAXGEN=1", "SFAULTS=0", "IFAULTS=0"}, want: pass, fast: true,
		why: "store and issuer up, one crash and its restart: no wait lasts for ever (I4)"},
	{name: "live/progress", claim: "progress", defs: []string{"MAXGEN=1", "SFAULTS=0", "IFAULTS=0"}, want: pass, fast: true,
		why: "store and issuer up, one crash: a new generation, or the lineage marked broken when the crash lost a pair mid-call"},
	{name: "live/commits without crashes", claim: "commits", defs: []string{"MAXGEN=2", "MAXCRASH=0", "SFAULTS=0", "IFAULTS=0"}, want: pass, fast: true,
		why: "store and issuer up, nobody crashes: every generation up to MAXGEN is committed"},
	{name: "live/commits with healing", claim: "commits", defs: []string{"MAXGEN=1", "SFAULTS=0", "IFAULTS=0", "HEALING=1", "MAXFAM=2"}, want: pass, fast: true,
		why: "store and issuer up, one crash anywhere: with healing a new generation is always committed"},

	// Limits of today's protocol: spin must find them (internal/faults/report.md).
	{name: "limit/slow issuer", defs: []string{"MAXGEN=1", "SLOWISS=1", "KEEP=1", "MAXCRASH=0", "IFAULTS=0", "SFAULTS=0"}, want: "KEEP", fast: true,
		why: "fault row 7: the holder's retry after IssuerTimeout presents the token the slow issuer spent"},
	{name: "limit/holder cut off past the lease", defs: []string{"MAXGEN=1", "MAXOUT=1", "OUTMAX=5", "MAXCRASH=0", "IFAULTS=0", "SFAULTS=0"}, want: "I1", fast: true,
		why: "fault rows 2, 17: another instance takes the live holder for dead and presents its spent token"},
	{name: "limit/maybe delivered twice", defs: []string{"MAXGEN=1", "IFAULTS=2"}, want: "I1", fast: true,
		why: "after two maybe-delivered calls the holder keeps an idle claim; a delayed re-claim lets another take it for dead"},
	{name: "limit/two crashes", defs: []string{"MAXGEN=1", "MAXCRASH=2", "SFAULTS=0", "IFAULTS=0"}, want: "I1", fast: true,
		why: "the holder and then the taker die mid-call: a third holder presents the token (introspection prevents it)"},

	// refresh/ in main (e951059) as it is: GO_MAIN.
	{name: "safety/main as it is, long cut-off", defs: []string{"MAXGEN=1", "RENEWAL=1", "INTROSPECTION=1", "MAXOUT=1", "OUTMAX=10", "MAXCRASH=0", "IFAULTS=0", "SFAULTS=1", "GO_MAIN=1"}, want: pass, fast: true,
		why: "main's hand-back through a cut-off of twice the lease, a failed hand-back included"},
	{name: "main/the broken mark given up after quick attempts", defs: []string{"MAXGEN=1", "RENEWAL=1", "MAXOUT=1", "OUTMAX=2", "IFAULTS=0", "SFAULTS=0", "GO_MARK_FEW=1"}, want: "I1", fast: true,
		why: "writeBroken gives up after a few quick attempts while the taker is cut off for half a lease: its lease stays, expires, and a third holder presents the token (with introspection it would ask and not present)"},
	{name: "keep/slow issuer, holder briefly cut off, renewal+introspection", defs: []string{"MAXGEN=1", "RENEWAL=1", "INTROSPECTION=1", "SLOWISS=1", "MAXOUT=1", "OUTMAX=3", "KEEP=1", "MAXCRASH=0", "IFAULTS=0", "SFAULTS=0"}, want: pass, fast: true,
		why: "a slow issuer and the holder cut off until its lease is lost: the holder still takes the answer and commits it over the taker's claim"},

	// Regression mutants: main before e951059, as this model found it.
	{name: "mutant/one broken-mark attempt", defs: []string{"MAXGEN=1", "GO_MARK_ONCE=1"}, want: "I1", fast: true,
		why: "rejected() tried the mark once and kept no memory: the claim stays, and the instance (or a third holder) presents the token again"},
	{name: "mutant/a lost lease cancels the issuer call", defs: []string{"MAXGEN=1", "RENEWAL=1", "INTROSPECTION=1", "SLOWISS=1", "MAXOUT=1", "OUTMAX=3", "KEEP=1", "MAXCRASH=0", "IFAULTS=0", "SFAULTS=0", "GO_CANCEL_ON_LOST=1"}, want: "KEEP", fast: true,
		why: "claim.lose cancelled the call in flight: the pair the issuer minted is dropped, and the lineage with it"},
	{name: "mutant/a failed question presents the token", defs: []string{"MAXGEN=1", "RENEWAL=1", "INTROSPECTION=1", "MAXOUT=1", "OUTMAX=7", "MAXCRASH=0", "SFAULTS=0", "GO_ASK_PRESENTS=1"}, want: "I1", fast: true,
		why: "spentElsewhere presented when the introspection call failed: a taker presents the token its live, cut-off holder spent"},
	{name: "mutant/asks only when taking over", defs: []string{"MAXGEN=1", "RENEWAL=1", "INTROSPECTION=1", "MAXOUT=1", "OUTMAX=10", "MAXCRASH=0", "IFAULTS=0", "SFAULTS=1", "GO_HANDBACK=1", "GO_ASK_TAKEOVER_ONLY=1"}, want: "I1", fast: true,
		why: "a hand-back that fails leaves the taker's own lease; asking only on another holder's lease, its next flight presents the token its live holder spent"},
	{name: "mutant/a deferred heal's pair is served", defs: []string{"MAXGEN=1", "HEALING=1", "MAXFAM=3", "SFAULTS=1", "GO_HEAL_SERVE=1"}, want: "I3", fast: true,
		why: "commitPending served a heal's pair while its commit was deferred; a second healer's pair wins: two pairs served as generation N+2"},

	// Mutants: each drops one protocol step; spin must catch each.
	{name: "mutant/no journal write", defs: []string{"MAXGEN=1", "MUT_NOJOURNAL=1"}, want: "I2", fast: true},
	{name: "mutant/no claim", defs: []string{"MAXGEN=1", "MUT_NOCLAIM=1"}, want: "I1", fast: true},
	{name: "mutant/commit without CAS", defs: []string{"MAXGEN=1", "MUT_NOCOMMITCAS=1"}, want: "BROKEN", fast: true},
	{name: "mutant/commit without CAS, lost ack", defs: []string{"MAXGEN=2", "LOSTACK=1", "MUT_NOCOMMITCAS=1"}, want: "I5", fast: true},
	{name: "mutant/no wait for a live lease", defs: []string{"MAXGEN=1", "MUT_NOLEASEWAIT=1"}, want: "I1", fast: true},
	{name: "mutant/no skew allowance", defs: []string{"MAXGEN=1", "MUT_NOSKEW=1"}, want: "I1", fast: true},
	{name: "mutant/no journal replay", defs: []string{"MAXGEN=1", "MUT_NOREPLAY=1"}, want: "I2", fast: true},
	{name: "mutant/presents after a failed renewal", defs: []string{"MAXGEN=1", "MAXOUT=1", "OUTMAX=7", "MAXCRASH=0", "SFAULTS=0", "RENEWAL=1", "INTROSPECTION=1", "MUT_NORENEWSTOP=1"}, want: "I1", fast: true},
	{name: "mutant/presents a spent token after asking", defs: []string{"MAXGEN=1", "MAXOUT=1", "OUTMAX=5", "MAXCRASH=0", "IFAULTS=0", "SFAULTS=0", "INTROSPECTION=1", "MUT_NOINTROWAIT=1"}, want: "I1", fast: true},
	{name: "mutant/never takes over", claim: "done", defs: []string{"MAXGEN=1", "SFAULTS=0", "IFAULTS=0", "MUT_NOTAKEOVER=1"}, want: cycle, fast: true},
}

// long is added by -model.full: bigger bounds (make model).
var long = []run{
	{name: "safety/today, two generations", defs: []string{"MAXGEN=2", "LOSTACK=1"}, want: pass, full: true,
		why: "I1-I5 at two generations, both skew directions, lost acknowledgements"},
	{name: "safety/all next steps, both skews", defs: []string{"MAXGEN=1", "RENEWAL=1", "INTROSPECTION=1", "HEALING=1", "MAXFAM=3"}, want: pass, full: true,
		why: "renewal, introspection and healing with every default fault"},
	{name: "safety/all next steps, two generations", defs: []string{"MAXGEN=2", "RENEWAL=1", "INTROSPECTION=1", "HEALING=1", "MAXFAM=3", "SFAULTS=1", "SKEWAHEAD=1"}, want: pass, full: true,
		why: "renewal, introspection and healing at two generations (one store fault)"},
	{name: "safety/renewal, two issuer faults", defs: []string{"MAXGEN=1", "RENEWAL=1", "IFAULTS=2"}, want: pass, full: true,
		why: "renewal closes the maybe-delivered-twice limit"},
	{name: "safety/introspection, cut off past the lease, faults", defs: []string{"MAXGEN=1", "MAXOUT=1", "OUTMAX=7", "INTROSPECTION=1"}, want: pass, full: true,
		why: "introspection keeps I1 for a holder cut off for lease + skew + 1, with crashes and faults"},
	{name: "safety/introspection, two crashes", defs: []string{"MAXGEN=1", "MAXCRASH=2", "INTROSPECTION=1"}, want: pass, full: true,
		why: "introspection closes the two-crashes limit"},
	{name: "safety/main as it is, both skews", defs: []string{"MAXGEN=1", "RENEWAL=1", "INTROSPECTION=1", "HEALING=1", "MAXFAM=3", "GO_MAIN=1"}, want: pass, full: true,
		why: "main's protocol (renewal, introspection with hand-back, healing, a few quick broken-mark attempts) with every default fault, both skew directions"},
	{name: "safety/main as it is, cut off past the lease, faults", defs: []string{"MAXGEN=1", "RENEWAL=1", "INTROSPECTION=1", "MAXOUT=1", "OUTMAX=7", "IFAULTS=0", "SFAULTS=1", "GO_MAIN=1"}, want: pass, full: true},
	{name: "live/main as it is finishes", claim: "done", defs: []string{"MAXGEN=1", "SFAULTS=0", "IFAULTS=0", "RENEWAL=1", "INTROSPECTION=1", "HEALING=1", "MAXFAM=2", "GO_MAIN=1"}, want: pass, full: true},
	{name: "live/every instance finishes, two generations", claim: "done", defs: []string{"MAXGEN=2", "SFAULTS=0", "IFAULTS=0"}, want: pass, full: true},
	{name: "live/commits with healing, two generations", claim: "commits", defs: []string{"MAXGEN=2", "SFAULTS=0", "IFAULTS=0", "HEALING=1", "MAXFAM=2"}, want: pass, full: true},
	{name: "live/every instance finishes, all next steps", claim: "done", defs: []string{"MAXGEN=1", "SFAULTS=0", "IFAULTS=0", "RENEWAL=1", "INTROSPECTION=1", "HEALING=1", "MAXFAM=2"}, want: pass, full: true},
}

// result is what one run found.
type result struct {
	run
	got     string        // pass or the outcome of the counterexample
	line    int           // the violated assertion's line in refresh.pml
	states  int64         // states stored
	search  time.Duration // pan's search
	total   time.Duration // spin, gcc and pan
	trace   []string      // the counterexample's protocol events
	summary string        // pan's verdict line
}

func TestModel(t *testing.T) {
	for _, tool := range []string{"spin", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed, and the protocol model cannot be checked without it: install it with `apt-get install -y spin gcc` (.ci/run does)", tool)
		}
	}
	src, err := os.ReadFile("refresh.pml")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := exec.Command("spin", "-V").Output(); err == nil {
		t.Logf("%s", bytes.TrimSpace(v))
	}
	runs := short
	if *full {
		runs = append(append([]run{}, short...), long...)
	}
	var mu sync.Mutex
	results := make([]*result, len(runs))
	t.Run("runs", func(t *testing.T) {
		for idx, r := range runs {
			t.Run(r.name, func(t *testing.T) {
				t.Parallel()
				res := verify(t, src, r)
				mu.Lock()
				results[idx] = res
				mu.Unlock()
			})
		}
	})
	if *reportPath != "" {
		if err := os.WriteFile(*reportPath, report(results), 0o644); err != nil {
			t.Errorf("write %s: %v", *reportPath, err)
		}
	}
}

// verify runs spin, gcc and pan for r in a fresh directory and checks the
// outcome against r.want.
func verify(t *testing.T, src []byte, r run) *result {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "refresh.pml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		defer cancel()
	}
	start := time.Now()
	defs := spinDefs(r)
	sh(ctx, t, dir, "spin", append(append([]string{"-a"}, defs...), "refresh.pml")...)
	cc := []string{"-w", "-o", "pan", "-DCOLLAPSE", "-DMEMLIM=6144"}
	if r.fast {
		cc = append(cc, "-O0")
	} else {
		cc = append(cc, "-O2")
	}
	pan := []string{"-m1000000", "-c1"}
	if r.claim == "" {
		cc = append(cc, "-DSAFETY")
	} else {
		cc = append(cc, "-DNFAIR=4")
		pan = append(pan, "-a", "-f", "-N", r.claim)
	}
	if r.full {
		pan = append(pan, "-w26")
	}
	sh(ctx, t, dir, "gcc", append(cc, "pan.c")...)
	panStart := time.Now()
	out := shAny(ctx, t, dir, "./pan", pan...)
	res := &result{run: r, search: time.Since(panStart)}
	parsePan(t, res, out)
	if res.got != pass && res.got != cycle {
		// Replay the trail: which assertion, and the protocol's events.
		trail := shAny(ctx, t, dir, "spin", append(append([]string{"-t"}, defs...), "refresh.pml")...)
		classify(t, res, src, trail)
	}
	res.total = time.Since(start)
	t.Logf("%s: %s; %d states; search %v (total %v)", r.name, res.got, res.states, res.search.Round(10*time.Millisecond), res.total.Round(10*time.Millisecond))
	if res.got != r.want {
		t.Errorf("%s: want %s, got %s (%s)\n%s\nrun again: cd model && spin -a %s refresh.pml && gcc %s pan.c && ./pan %s && spin -t %s refresh.pml",
			r.name, r.want, res.got, res.summary, strings.Join(res.trace, "\n"),
			strings.Join(defs, " "), strings.Join(cc, " "), strings.Join(pan, " "), strings.Join(defs, " "))
	} else if len(res.trace) > 0 {
		t.Logf("counterexample (%s):\n%s", res.got, strings.Join(res.trace, "\n"))
	}
	return res
}

func spinDefs(r run) []string {
	var defs []string
	for _, d := range r.defs {
		defs = append(defs, "-D"+d)
	}
	if r.claim != "" {
		defs = append(defs, "-DLIVE=1")
	}
	return defs
}

var (
	errorsRE  = regexp.MustCompile(`errors: (\d+)`)
	storedRE  = regexp.MustCompile(`(?m)^\s*(\d+) states, stored`)
	violRE    = regexp.MustCompile(`(?m)^pan:1: (.*)$`)
	assertRE  = regexp.MustCompile(`(?m)^spin: refresh\.pml:(\d+), Error: assertion violated`)
	tagRE     = regexp.MustCompile(`/\*\s*(I[1-5]|KEEP|MODEL|BROKEN):`)
	eventRE   = regexp.MustCompile(`^\s*EV (.*)$`)
	incomplRE = regexp.MustCompile(`max search depth too small|reached -DMEMLIM bound|out of memory`)
)

// parsePan reads pan's report: whether it found a counterexample and how
// many states it stored. A search that did not finish fails the test: its
// "no violation" would prove nothing.
func parsePan(t *testing.T, res *result, out string) {
	t.Helper()
	m := errorsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s: pan printed no verdict:\n%s", res.name, out)
	}
	if m := storedRE.FindStringSubmatch(out); m != nil {
		res.states, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := violRE.FindStringSubmatch(out); m != nil {
		res.summary = m[1]
	}
	errs, _ := strconv.Atoi(m[1])
	switch {
	case errs == 0:
		if incomplRE.MatchString(out) {
			t.Fatalf("%s: the search did not finish, so its silence proves nothing:\n%s", res.name, out)
		}
		res.got, res.summary = pass, "no violation"
	case strings.Contains(res.summary, "acceptance cycle"):
		res.got = cycle
	case strings.Contains(res.summary, "invalid end state"):
		res.got = stuck
	default:
		res.got = "assertion" // refined from the trail
	}
}

// classify names the violated assertion by the tag in its comment and
// keeps the counterexample's events.
func classify(t *testing.T, res *result, src []byte, trail string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(trail))
	for sc.Scan() {
		if m := eventRE.FindStringSubmatch(sc.Text()); m != nil {
			res.trace = append(res.trace, "  "+strings.TrimSpace(m[1]))
		}
	}
	if res.got == stuck {
		return
	}
	m := assertRE.FindStringSubmatch(trail)
	if m == nil {
		t.Fatalf("%s: replaying the counterexample named no assertion:\n%s", res.name, trail)
	}
	res.line, _ = strconv.Atoi(m[1])
	lines := strings.Split(string(src), "\n")
	if res.line < 1 || res.line > len(lines) {
		t.Fatalf("%s: assertion at line %d, outside refresh.pml", res.name, res.line)
	}
	tag := tagRE.FindStringSubmatch(lines[res.line-1])
	if tag == nil {
		t.Fatalf("%s: the assertion at refresh.pml:%d has no /* TAG: */ comment", res.name, res.line)
	}
	res.got = tag[1]
	res.summary = strings.TrimSpace(lines[res.line-1])
}

// sh runs a command that must succeed.
func sh(ctx context.Context, t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// shAny runs a command whose exit status says nothing useful (pan exits
// non-zero when it finds a violation); its output is judged instead.
func shAny(ctx context.Context, t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), ctx.Err())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

// report renders the runs as a Markdown table.
func report(results []*result) []byte {
	var b bytes.Buffer
	mode := "short (go test ./model)"
	if *full {
		mode = "full (make model)"
	}
	fmt.Fprintf(&b, "# Model checking results\n\nGenerated by `make model` (`go test ./model -run TestModel -args -model.full -model.report results.md`); do not edit.\n\n")
	fmt.Fprintf(&b, "Run: %s, %s. Times are pan's search on a shared 2-core machine; states are those spin stored (partial-order reduction, COLLAPSE compression, exhaustive).\n\n", mode, time.Now().UTC().Format("2006-01-02"))
	b.WriteString("| run | switches | expected | found | states | search |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		if r == nil {
			continue
		}
		sw := strings.Join(r.defs, " ")
		if r.claim != "" {
			sw += " (ltl " + r.claim + ")"
		}
		found := r.got
		if r.line > 0 {
			found = fmt.Sprintf("%s (refresh.pml:%d)", r.got, r.line)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %d | %.1fs |\n", r.name, sw, r.want, found, r.states, r.search.Seconds())
	}
	b.WriteString("\n## What each run shows\n\n")
	for _, r := range results {
		if r == nil || r.why == "" {
			continue
		}
		fmt.Fprintf(&b, "- **%s**: %s.\n", r.name, r.why)
		if len(r.trace) > 0 && strings.HasPrefix(r.name, "limit/") {
			fmt.Fprintf(&b, "\n  ```\n%s\n  ```\n", strings.Join(r.trace, "\n"))
		}
	}
	return b.Bytes()
}
