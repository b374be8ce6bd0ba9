package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/provider"
)

// Demo timing: short lifetimes so that a run spans many expiries.
const (
	demoLifetime    = 6 * time.Second
	demoFraction    = "0.5"
	demoFloor       = "2s"
	demoMinValidity = "500ms"
	demoLease       = "1500ms"
	demoIssuerTO    = "500ms"
	demoSkew        = "250ms"
)

// demoSummary is the one JSON line `credhelper demo` ends with. Its counts
// come from the dev issuer's counters and the stored record, not from the
// callers, except the tokens served.
type demoSummary struct {
	Processes          int     `json:"processes"`
	GoroutinesEach     int     `json:"goroutinesPerProcess"`
	CLIInvocations     int64   `json:"cliGetInvocations"`
	Seconds            float64 `json:"seconds"`
	Expiries           float64 `json:"lifetimesElapsed"`
	Generations        uint64  `json:"generationsCommitted"`
	IssuerRefreshCalls uint64  `json:"issuerRefreshCalls"`
	IssuerAttempts     uint64  `json:"issuerRefreshAttempts"`
	Rejected           uint64  `json:"rejectedRefreshes"`
	Reuses             uint64  `json:"refreshTokenReuses"`
	FamiliesRevoked    uint64  `json:"familiesRevoked"`
	TokensServed       int64   `json:"tokensServed"`
	InvalidServed      int64   `json:"invalidTokensServed"`
	CallerErrors       int64   `json:"callerErrors"`
	LineageIntact      bool    `json:"lineageIntact"`
}

// workerReport is what each demo worker prints.
type workerReport struct {
	Served  int64 `json:"served"`
	Invalid int64 `json:"invalid"`
	Errors  int64 `json:"errors"`
}

func (a *app) demoCommand() *cobra.Command {
	var (
		procs, goroutines int
		duration          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the embedded default end to end: dev issuer, file store, a fleet of processes",
		Long: `demo needs no cloud account and no network beyond loopback. It starts the
built-in dev issuer, generates a pair with a lifetime of a few seconds, stores
it in a file in a temporary directory, and runs several credhelper processes
(each with many goroutines) plus a loop of one-shot 'credhelper get' calls, all
sharing the credential across many expiries. It ends with one JSON summary
line; the exit code is 1 unless every refresh token was spent exactly once.`,
		Example: `  credhelper demo
  credhelper demo --processes 8 --goroutines 64 --duration 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runDemo(cmd.Context(), procs, goroutines, duration)
		},
	}
	f := cmd.Flags()
	f.IntVar(&procs, "processes", 4, "worker processes")
	f.IntVar(&goroutines, "goroutines", 16, "goroutines per worker process")
	f.DurationVar(&duration, "duration", 5*demoLifetime+time.Second, "how long the fleet runs")
	return cmd
}

func (a *app) runDemo(ctx context.Context, procs, goroutines int, duration time.Duration) error {
	if procs < 1 || goroutines < 1 || duration <= 0 {
		return usagef("demo: --processes, --goroutines and --duration must be positive")
	}
	dir, err := os.MkdirTemp("", "credhelper-demo-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	credPath := filepath.Join(dir, "cred.json")

	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer srv.Close()
	iss, err := momento.New(func(o *momento.Options) { o.Addr, o.Insecure = srv.Addr(), true })
	if err != nil {
		return err
	}
	first, err := iss.Generate(ctx, provider.GenerateRequest{SessionToken: srv.SessionToken(), Lifetime: demoLifetime, Description: "credhelper demo"})
	if err != nil {
		return err
	}
	b, err := file.New()
	if err != nil {
		return err
	}
	value, err := (&provider.Record{Pair: first}).Encode()
	if err != nil {
		return err
	}
	if _, err := b.CompareAndSwap(ctx, credPath, "", value); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "demo: dev issuer on %s; pair generated (lifetime %v) and stored in %s\n", srv.Addr(), demoLifetime, credPath)
	fmt.Fprintf(a.stderr, "demo: %d processes x %d goroutines and a loop of 'credhelper get' for %v...\n", procs, goroutines, duration)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	common := []string{
		"--backend", "file:" + credPath, "--issuer", "dev:" + srv.Addr(),
		"--journal-dir", filepath.Join(dir, "journal"),
		"--refresh-fraction", demoFraction, "--refresh-floor", demoFloor, "--min-validity", demoMinValidity,
		"--lease", demoLease, "--issuer-timeout", demoIssuerTO, "--clock-skew", demoSkew,
	}
	start := time.Now()
	deadline := start.Add(duration)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		total   workerReport
		cliRuns atomic.Int64
		runErr  error
	)
	// Children run in their own process group, so a Ctrl-C reaches only
	// this process, which stops them (SIGTERM, then SIGKILL) and says so
	// once; after that their own output is dropped.
	child := func(args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, self, args...)
		c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
		c.WaitDelay = 5 * time.Second
		c.Stderr = untilDone{ctx, a.stderr}
		ownProcessGroup(c)
		return c
	}
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"demo-worker", "--goroutines", strconv.Itoa(goroutines), "--until", deadline.Format(time.RFC3339Nano)}, common...)
			out, err := child(args...).Output()
			var r workerReport
			if err == nil {
				err = json.Unmarshal(bytes.TrimSpace(out), &r)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && runErr == nil {
				runErr = fmt.Errorf("demo worker: %w", err)
			}
			total.Served += r.Served
			total.Invalid += r.Invalid
			total.Errors += r.Errors
		}()
	}
	// One-shot CLI calls, as a script or another tool would make them.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(deadline) && ctx.Err() == nil {
			out, err := child(append([]string{"get"}, common...)...).Output()
			cliRuns.Add(1)
			mu.Lock()
			if err != nil || !validDemoToken(bytes.TrimSpace(out)) {
				total.Errors++
			} else {
				total.Served++
			}
			mu.Unlock()
		}
	}()
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("demo interrupted: stopped its %d worker processes and the loop of 'credhelper get'", procs)
	}
	if runErr != nil {
		return runErr
	}
	entry, err := b.Load(ctx, credPath)
	if err != nil {
		return err
	}
	rec, err := provider.DecodeRecord(entry.Value)
	if err != nil {
		return err
	}
	st := srv.Stats()
	elapsed := time.Since(start)
	s := demoSummary{
		Processes: procs, GoroutinesEach: goroutines, CLIInvocations: cliRuns.Load(),
		Seconds: elapsed.Seconds(), Expiries: elapsed.Seconds() / demoLifetime.Seconds(),
		Generations: rec.Pair.Generation, IssuerRefreshCalls: st.Refreshes, IssuerAttempts: st.RefreshAttempts,
		Rejected: st.Rejected, Reuses: st.Reuses, FamiliesRevoked: st.FamiliesRevoked,
		TokensServed: total.Served, InvalidServed: total.Invalid, CallerErrors: total.Errors,
	}
	s.LineageIntact = s.IssuerRefreshCalls == s.Generations && s.IssuerAttempts == s.Generations &&
		s.Rejected == 0 && s.Reuses == 0 && s.FamiliesRevoked == 0 && s.InvalidServed == 0 &&
		rec.Broken == nil && time.Now().Before(rec.Pair.ValidUntil)
	line, _ := json.Marshal(s)
	fmt.Fprintf(a.stdout, "%s\n", line)
	if !s.LineageIntact {
		return fmt.Errorf("demo: lineage NOT intact (see the summary)")
	}
	fmt.Fprintf(a.stderr, "demo: %d generations, %d issuer refresh calls, %d rejected, %d tokens served, lineage intact\n",
		s.Generations, s.IssuerRefreshCalls, s.Rejected, s.TokensServed)
	return nil
}

// validDemoToken reports whether tok is a dev-issuer key that decodes and
// has not expired.
func validDemoToken(tok []byte) bool {
	info, err := provider.ParseAuthToken(string(tok))
	return err == nil && info.Endpoint != "" && (info.Expires.IsZero() || time.Now().Before(info.Expires))
}

func (a *app) demoWorkerCommand() *cobra.Command {
	var (
		goroutines int
		until      string
	)
	cmd := &cobra.Command{
		Use:    "demo-worker",
		Short:  "One process of the demo fleet (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			end, err := time.Parse(time.RFC3339Nano, until)
			if err != nil {
				return usagef("--until: %v", err)
			}
			a.quietInterrupt = true // the demo says what happened
			w, err := a.wire(cmd.Context(), a.profile)
			if err != nil {
				return err
			}
			defer w.Close()
			e, err := a.engine(w)
			if err != nil {
				return err
			}
			defer func() { _ = a.closeEngine(e, w) }()
			var served, invalid, errs atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < goroutines; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(end) && cmd.Context().Err() == nil {
						ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
						p, err := e.Credential(ctx)
						cancel()
						switch {
						case err != nil && cmd.Context().Err() != nil:
						case err != nil:
							errs.Add(1)
							a.logger.Warn("demo worker: " + err.Error())
						case !p.ValidFor(time.Now(), 0) || !validDemoToken([]byte(p.AuthToken)):
							invalid.Add(1)
						default:
							served.Add(1)
						}
						time.Sleep(time.Millisecond)
					}
				}()
			}
			wg.Wait()
			out := bufio.NewWriter(a.stdout)
			defer out.Flush()
			return json.NewEncoder(out).Encode(workerReport{Served: served.Load(), Invalid: invalid.Load(), Errors: errs.Load()})
		},
	}
	cmd.Flags().IntVar(&goroutines, "goroutines", 16, "goroutines")
	cmd.Flags().StringVar(&until, "until", "", "stop at this RFC 3339 time")
	return cmd
}

// untilDone passes writes on to w until ctx is done and drops them after:
// once the demo is interrupted, only it speaks.
type untilDone struct {
	ctx context.Context
	w   io.Writer
}

func (u untilDone) Write(p []byte) (int, error) {
	if u.ctx.Err() != nil {
		return len(p), nil
	}
	return u.w.Write(p)
}
