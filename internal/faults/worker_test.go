package faults_test

// What a worker process of the matrix runs: TestMain hands every worker to
// fleet.Child(buildTarget), which builds the backend, issuer and engine
// options from the parameters the cell set, per instance where a key ends
// in ".<index>".

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/credhelper/credhelper/backends/awssm"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/backends/vault"
	"github.com/credhelper/credhelper/internal/faults"
	"github.com/credhelper/credhelper/internal/fleet"
	"github.com/credhelper/credhelper/issuers/momento"
	"github.com/credhelper/credhelper/issuers/oauth2"
	"github.com/credhelper/credhelper/provider"
	"github.com/credhelper/credhelper/refresh"
)

// param returns p[name+"."+index] if set, else p[name].
func param(w fleet.Worker, name string) string {
	if v, ok := w.Params[fmt.Sprintf("%s.%d", name, w.Index)]; ok {
		return v
	}
	return w.Params[name]
}

func durationParam(w fleet.Worker, name string) (time.Duration, error) {
	s := param(w, name)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("param %s: %w", name, err)
	}
	return d, nil
}

// openStore opens the cell's backend as instance w sees it: through its
// own proxy (AWS, Vault) or switch (file).
func openStore(w fleet.Worker) (provider.Backend, func() error, error) {
	switch param(w, "backend") {
	case "file":
		b, err := file.New()
		if err != nil {
			return nil, nil, err
		}
		return &faults.Backend{Backend: b, Switch: faults.Switch(param(w, "switch"))}, nil, nil
	case "awssm":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := awssm.NewFromConfig(ctx, func(o *awssm.Options) { o.EndpointURL = param(w, "endpoint") })
		return b, nil, err
	case "vault":
		b, err := vault.NewFromEnv(func(o *vault.Options) { o.Address, o.Token = param(w, "endpoint"), param(w, "vaultToken") })
		if err != nil {
			return nil, nil, err
		}
		return b, b.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown backend %q", param(w, "backend"))
}

func buildTarget(w fleet.Worker) (fleet.Target, error) {
	b, closeB, err := openStore(w)
	if err != nil {
		return fleet.Target{}, err
	}
	iss, err := issuer(w)
	if err != nil {
		return fleet.Target{}, err
	}
	opt, err := engineOptions(w)
	if err != nil {
		return fleet.Target{}, err
	}
	boot, err := bootstrapper(w)
	if err != nil {
		return fleet.Target{}, err
	}
	healBackoff, err := durationParam(w, "healBackoff")
	if err != nil {
		return fleet.Target{}, err
	}
	heal := func(o *refresh.Options) { o.Bootstrap, o.HealBackoff = boot, healBackoff }
	t := fleet.Target{Backend: b, Issuer: iss, Key: param(w, "key"), Options: []func(*refresh.Options){opt, heal}, Close: closeB}
	switch param(w, "force") {
	case "once":
		// Refresh at once, so the fault meets the first refresh.
		t.Before = func(ctx context.Context, e *refresh.Engine) error {
			_, err := e.Refresh(ctx)
			if err != nil && param(w, "forceMayFail") == "1" {
				return nil
			}
			return err
		}
	case "loop":
		// Force a refresh every forceEvery (±50%) until the run's
		// deadline, so that instances contend for every generation.
		every, err := durationParam(w, "forceEvery")
		if err != nil {
			return fleet.Target{}, err
		}
		t.Before = func(ctx context.Context, e *refresh.Engine) error {
			deadline, _ := ctx.Deadline()
			go func() {
				for time.Now().Before(deadline) {
					time.Sleep(every/2 + rand.N(every))
					c, cancel := context.WithDeadline(context.Background(), deadline)
					_, _ = e.Refresh(c)
					cancel()
				}
			}()
			return nil
		}
	}
	return t, nil
}

// issuer speaks to the cell's dev issuer (through its proxy) in the
// cell's protocol: "momento" (gRPC, the default) or "oauth2" (the token
// endpoint, and the RFC 7662 introspection endpoint when introspect is
// "1").
func issuer(w fleet.Worker) (provider.Issuer, error) {
	addr := param(w, "devAddr")
	switch param(w, "protocol") {
	case "", "momento":
		return momento.New(func(o *momento.Options) { o.Addr, o.Insecure = addr, true })
	case "oauth2":
		return oauth2.New("http://"+addr+"/oauth2/token", func(o *oauth2.Options) {
			o.ClientID, o.ClientSecret = param(w, "clientID"), param(w, "clientSecret")
			if param(w, "introspect") == "1" {
				o.IntrospectionURL = "http://" + addr + "/oauth2/introspect"
			}
		})
	}
	return nil, fmt.Errorf("unknown protocol %q", param(w, "protocol"))
}

// bootstrapper is the engine's Options.Bootstrap when the cell sets
// bootstrap=momento: a first pair of bootstrapLifetime generated over the
// dev issuer's gRPC GenerateApiToken with its session token, as
// `credhelper generate` does (the dev issuer refreshes such a pair in
// either protocol). Nil otherwise.
func bootstrapper(w fleet.Worker) (provider.Bootstrapper, error) {
	switch param(w, "bootstrap") {
	case "":
		return nil, nil
	case "momento":
	default:
		return nil, fmt.Errorf("unknown bootstrap %q", param(w, "bootstrap"))
	}
	lifetime, err := durationParam(w, "bootstrapLifetime")
	if err != nil {
		return nil, err
	}
	gen, err := momento.New(func(o *momento.Options) { o.Addr, o.Insecure = param(w, "devAddr"), true })
	if err != nil {
		return nil, err
	}
	session := param(w, "sessionToken")
	return provider.BootstrapperFunc(func(ctx context.Context) (provider.Pair, error) {
		return gen.Generate(ctx, provider.GenerateRequest{SessionToken: session, Lifetime: lifetime, Description: "faults: heal"})
	}), nil
}

// engineOptions sets the cell's timing, journal, clock offset and
// failpoints (pause or SIGKILL at a step).
func engineOptions(w fleet.Worker) (func(*refresh.Options), error) {
	tm, err := fleet.ParseTiming(func(k string) string { return param(w, k) })
	if err != nil {
		return nil, err
	}
	journal := param(w, "journal")
	if journal == "" {
		return nil, errors.New("param journal missing")
	}
	offset, err := durationParam(w, "clockOffset")
	if err != nil {
		return nil, err
	}
	pause, pauseAt, killAt := faults.Pause(param(w, "pause")), param(w, "pauseAt"), param(w, "killAt")
	return func(eo *refresh.Options) {
		tm.Apply(eo)
		eo.JournalDir = journal
		if offset != 0 {
			eo.Clock = newOffsetClock(offset)
		}
		if pauseAt == "" && killAt == "" {
			return
		}
		eo.Trace = fleet.StepTrace(func(step string) {
			if step == pauseAt {
				pause.Wait(strconv.Itoa(w.Index), time.Minute)
			}
			if step == killAt {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		})
	}, nil
}

// offsetClock is the wall clock off by a fixed amount, as on a host whose
// clock is wrong; its coarse reading is kept by a goroutine of its own.
type offsetClock struct {
	off    time.Duration
	coarse atomic.Int64
}

func newOffsetClock(off time.Duration) *offsetClock {
	c := &offsetClock{off: off}
	c.coarse.Store(c.Now().UnixMilli())
	go func() {
		for range time.Tick(refresh.CoarseTick) {
			c.coarse.Store(c.Now().UnixMilli())
		}
	}()
	return c
}

func (c *offsetClock) Now() time.Time { return time.Now().Add(c.off) }

func (c *offsetClock) Coarse() *atomic.Int64 { return &c.coarse }
