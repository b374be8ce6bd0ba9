package server_test

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/agent/server"
	"github.com/credhelper/credhelper/provider"
)

// BenchmarkGetViaAgent measures one client round trip as `credhelper get`
// makes it: connect, check the agent's uid, send, receive, decode, close.
// The provider answers from memory, as a fresh engine does.
func BenchmarkGetViaAgent(b *testing.B) {
	// A token of the size Momento keys have.
	fp := &fakeProvider{pair: provider.Pair{AuthToken: "eyJ" + strings.Repeat("a", 600), ValidUntil: time.Now().Add(time.Hour), Endpoint: "cell.example.com", Generation: 9}}
	ts := startServer(b, []server.Profile{{Name: "p", Provider: fp}})
	c := ts.client()
	ctx := context.Background()
	req := agent.Request{Profile: "p"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Get(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetProcess measures whole `credhelper get` processes, start to
// exit, on the file backend: through a running agent, directly
// (CREDHELPER_NO_AGENT), and `credhelper version` as the floor that
// process start alone costs. It reports the median, which the agent's
// latency goal is stated in. `make bench` runs it.
func BenchmarkGetProcess(b *testing.B) {
	f := newFixture(b)
	ap := startAgent(b, f.env, "--profiles", "never")
	defer ap.stop(b, syscall.SIGTERM)
	for _, bc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"agent", f.env, []string{"get", "--profile", "never"}},
		{"direct", append(f.env[:len(f.env):len(f.env)], "CREDHELPER_NO_AGENT=1"), []string{"get", "--profile", "never"}},
		{"version", f.env, []string{"version"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if out, errs, code := runCLI(b, bc.env, bc.args...); code != 0 || bc.name != "version" && strings.TrimSpace(out) != f.never.AuthToken {
				b.Fatalf("credhelper %v: code %d, stderr %s", bc.args, code, errs)
			}
			d := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(credhelperBin(b), bc.args...)
				cmd.Env = bc.env
				start := time.Now()
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				d = append(d, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "ms-median")
			b.ReportMetric(float64(d[len(d)*9/10].Microseconds())/1000, "ms-p90")
		})
	}
}
