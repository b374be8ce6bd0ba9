package fleet_test

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/internal/fleet"
	"github.com/credhelper/credhelper/issuers/dev"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

func build(w fleet.Worker) (fleet.Target, error) {
	b, err := file.New()
	if err != nil {
		return fleet.Target{}, err
	}
	iss, err := momento.New(func(o *momento.Options) { o.Addr, o.Insecure = w.Params["addr"], true })
	if err != nil {
		return fleet.Target{}, err
	}
	t := fleet.Target{Backend: b, Issuer: iss, Key: w.Params["key"], Options: []func(*refresh.Options){func(o *refresh.Options) {
		o.JournalDir = w.Params["journal"]
		o.RefreshFraction, o.RefreshFloor, o.MinValidity = 0.5, 2*time.Second, 500*time.Millisecond
		o.LeaseDuration, o.IssuerTimeout, o.ClockSkew = 3*time.Second, time.Second, 250*time.Millisecond
	}}}
	if w.Params["hang"] == "1" {
		t.Before = func(ctx context.Context, _ *refresh.Engine) error { <-ctx.Done(); return nil }
	}
	return t, nil
}

// setup starts a dev issuer and stores a pair with the given lifetime.
func setup(t *testing.T, lifetime time.Duration) (*dev.Server, map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := dev.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "cred.json")
	first, err := srv.Mint(provider.GenerateRequest{Lifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := (&provider.Record{Pair: first}).Encode()
	b, _ := file.New()
	if _, err := b.CompareAndSwap(ctx, key, "", v); err != nil {
		t.Fatal(err)
	}
	return srv, map[string]string{"addr": srv.Addr(), "key": key, "journal": filepath.Join(t.TempDir(), "j")}
}

// TestRun runs a small fleet through one refresh and checks the merged
// report and the store poller.
func TestRun(t *testing.T) {
	if fleet.Child(build) {
		return
	}
	srv, params := setup(t, 4*time.Second)
	b, _ := file.New()
	poll := fleet.Poll(b, params["key"], 50*time.Millisecond)
	res, err := fleet.Run(context.Background(), fleet.Spec{
		TestName: t.Name(), Processes: 2, Goroutines: 3, Generations: 1, Duration: 20 * time.Second,
		StartDelay: 500 * time.Millisecond, MinValidity: 500 * time.Millisecond, Params: params,
	})
	store, regress, _ := poll.Stop()
	if err != nil {
		t.Fatal(err)
	}
	tot := &res.Total
	t.Log(tot.Summary())
	if len(res.Procs) != 2 || res.Procs[0].Report == nil || res.Procs[1].Report == nil {
		t.Fatalf("reports missing: %+v", res.Procs)
	}
	if tot.Goroutines != 6 || tot.Served == 0 || tot.Errors != 0 || tot.Invalid != 0 || tot.Regressions != 0 {
		t.Errorf("total: %s", tot.Summary())
	}
	if tot.MaxGeneration != 1 || srv.Stats().Refreshes != 1 {
		t.Errorf("max generation %d, issuer refreshes %d; want 1, 1", tot.MaxGeneration, srv.Stats().Refreshes)
	}
	if tot.Waited.Count() == 0 || tot.Cached.Count() == 0 || tot.Waited.Count()+tot.Cached.Count() != uint64(tot.Served) {
		t.Errorf("histograms: waited %v cached %v served %d", &tot.Waited, &tot.Cached, tot.Served)
	}
	if tot.Events["committed"] != 1 {
		t.Errorf("engine events %v, want one commit", tot.Events)
	}
	if len(tot.Timeline) < 2 || len(store) != 2 || len(regress) != 0 {
		t.Errorf("timeline %v, store %v, regressions %v", tot.Timeline, store, regress)
	}
}

// TestKilledWorker checks that a worker killed by a signal is an error for
// Wait(false) and reported with its signal by Wait(true).
func TestKilledWorker(t *testing.T) {
	if fleet.Child(build) {
		return
	}
	_, params := setup(t, time.Hour)
	params["hang"] = "1"
	spec := fleet.Spec{TestName: t.Name(), Processes: 1, Goroutines: 1, Duration: time.Minute, StartDelay: 100 * time.Millisecond, Params: params}
	for _, allow := range []bool{true, false} {
		f, err := fleet.Start(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		f.Kill()
		res, err := f.Wait(allow)
		if p := res.Procs[0]; p.Signal != syscall.SIGKILL || p.Report != nil {
			t.Errorf("killed worker: signal %v report %v", p.Signal, p.Report)
		}
		if (err == nil) != allow {
			t.Errorf("Wait(%v) err = %v", allow, err)
		}
	}
}
