package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/credhelper/credhelper/backends/awssm"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/internal/bench"
	"github.com/credhelper/credhelper/provider"
)

// ProcessResult is the wall time and peak RSS of one command run repeatedly.
type ProcessResult struct {
	Name      string     `json:"name"`
	Command   string     `json:"command"`
	Wall      bench.Dist `json:"wall"`
	PeakRSSKB int64      `json:"peak_rss_kb_median"`
}

// procSpec is one command the helper-latency step times.
type procSpec struct {
	name  string
	env   []string // added to the inherited environment; later entries win
	argv  []string
	stdin string // what the tool writes to the helper, if anything
}

// rssRuns is how many extra runs of each command measure its peak RSS.
const rssRuns = 5

// timeProcesses runs every command runs times, round-robin (after two
// warm-up rounds), so that the machine's noise falls on credhelper and its
// peers alike, and records each run's wall time. Peak RSS comes from
// separate runs under /usr/bin/time: Go starts children with vfork, and a
// vforked child's maxrss (wait4) includes the parent's resident set at the
// moment of exec, so credbench's own memory would show in every row.
func timeProcesses(specs []procSpec, runs int) ([]ProcessResult, error) {
	walls := make([][]time.Duration, len(specs))
	for round := -2; round < runs; round++ {
		for i, s := range specs {
			d, err := runOnce(s)
			if err != nil {
				return nil, err
			}
			if round >= 0 {
				walls[i] = append(walls[i], d)
			}
		}
	}
	gnuTime, timeErr := exec.LookPath("/usr/bin/time")
	out := make([]ProcessResult, len(specs))
	for i, s := range specs {
		out[i] = ProcessResult{Name: s.name, Command: strings.Join(redactArgs(s.argv), " "), Wall: bench.Summarise(walls[i])}
		if timeErr != nil {
			continue
		}
		var rss []int64
		for j := 0; j < rssRuns; j++ {
			kb, err := peakRSS(gnuTime, s)
			if err != nil {
				return nil, err
			}
			rss = append(rss, kb)
		}
		sort.Slice(rss, func(a, b int) bool { return rss[a] < rss[b] })
		out[i].PeakRSSKB = rss[len(rss)/2]
	}
	return out, nil
}

func runOnce(s procSpec) (time.Duration, error) {
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Env = append(os.Environ(), s.env...)
	if s.stdin != "" {
		cmd.Stdin = strings.NewReader(s.stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %s", s.name, err, strings.TrimSpace(errb.String()))
	}
	if out.Len() == 0 {
		return 0, fmt.Errorf("%s printed nothing", s.name)
	}
	return wall, nil
}

// peakRSS runs the command under GNU time, which forks it from its own
// small address space, and returns the maximum resident set in KiB.
func peakRSS(gnuTime string, s procSpec) (int64, error) {
	f, err := os.CreateTemp("", "credbench-rss-*")
	if err != nil {
		return 0, err
	}
	f.Close()
	defer os.Remove(f.Name())
	argv := append([]string{"-f", "%M", "-o", f.Name()}, s.argv...)
	if _, err := runOnce(procSpec{name: s.name, env: s.env, argv: append([]string{gnuTime}, argv...), stdin: s.stdin}); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return 0, err
	}
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		return 0, fmt.Errorf("%s: /usr/bin/time wrote nothing", s.name)
	}
	return strconv.ParseInt(lines[len(lines)-1], 10, 64)
}

func redactArgs(argv []string) []string {
	out := append([]string(nil), argv...)
	out[0] = filepath.Base(out[0])
	return out
}

// helperLatency times one `credhelper get` process per backend, directly
// and through a running agent, against the aws CLI reading the same moto
// secret, with credhelper-full's bare start for context.
func helperLatency(ctx context.Context, r *Results, bin string, runs int) error {
	full := filepath.Join(filepath.Dir(bin), "credhelper-full")
	if _, err := os.Stat(full); err != nil {
		return fmt.Errorf("%s: build it with make build", full)
	}
	endpoint := os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
	if endpoint == "" {
		return fmt.Errorf("AWS_ENDPOINT_URL_SECRETS_MANAGER is unset: run under scripts/testenv.sh (make bench does)")
	}
	dir, err := os.MkdirTemp("", "credbench-helper-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pair := provider.Pair{AuthToken: "bench-token", RefreshToken: "bench-refresh", ValidUntil: time.Now().Add(24 * time.Hour)}
	value, _ := (&provider.Record{Pair: pair}).Encode()

	fb, _ := file.New()
	credPath := filepath.Join(dir, "cred.json")
	if _, err := fb.CompareAndSwap(ctx, credPath, "", value); err != nil {
		return err
	}
	ab, err := awssm.NewFromConfig(ctx)
	if err != nil {
		return err
	}
	secret := fmt.Sprintf("credbench/%d", time.Now().UnixNano())
	if _, err := ab.CompareAndSwap(ctx, secret, "", value); err != nil {
		return err
	}

	// The agent serves the same file and secret as profiles, from a home
	// of its own (XDG directories, config at its XDG location).
	home, err := newAgentHome(fmt.Sprintf("[profiles.file]\nbackend = \"file:%s\"\n%s\n[profiles.moto]\nbackend = \"awssm:%s\"\n", credPath, faceTables, secret))
	if err != nil {
		return err
	}
	defer home.remove()
	ap, err := startAgent(bin, home, 30*time.Second)
	if err != nil {
		return err
	}
	defer ap.stop()

	// The direct runs read the (empty) config file as a user's would and
	// keep their journal away from the agent's; they bypass the agent
	// because --backend is given.
	journal := "--journal-dir=" + filepath.Join(dir, "journal")
	direct := home.env
	// CREDHELPER_FULL=/bin/false: were the front to fall back to the full
	// binary instead of answering from the agent, the run would fail.
	viaAgent := append(home.env[:len(home.env):len(home.env)], "CREDHELPER_FULL=/bin/false")
	specs := []procSpec{
		{name: "credhelper get (file backend)", env: direct, argv: []string{bin, "get", "--backend", "file:" + credPath, journal}},
		{name: "credhelper get (AWS Secrets Manager on moto)", env: direct, argv: []string{bin, "get", "--backend", "awssm:" + secret, journal}},
		{name: "credhelper get through the agent (file backend)", env: viaAgent, argv: []string{bin, "get", "--profile", "file"}},
		{name: "credhelper get through the agent (AWS Secrets Manager on moto)", env: viaAgent, argv: []string{bin, "get", "--profile", "moto"}},
		{name: "credhelper-full version (start of the full binary, for context)", env: direct, argv: []string{full, "version"}},
	}
	faces, err := faceSpecs(bin, dir, home.env)
	if err != nil {
		return err
	}
	specs = append(specs, faces...)
	if echo, err := exec.LookPath("echo"); err == nil {
		specs = append(specs, procSpec{name: "echo (start of a minimal process, the machine's floor)", argv: []string{echo, "x"}})
	}
	if aws, err := exec.LookPath("aws"); err == nil {
		specs = append(specs, procSpec{name: "aws secretsmanager get-secret-value (aws CLI, same moto secret)", argv: []string{aws,
			"secretsmanager", "get-secret-value", "--secret-id", secret, "--endpoint-url", endpoint, "--query", "SecretString", "--output", "text"}})
	} else {
		r.Notes = append(r.Notes, "aws CLI not installed: the aws CLI comparison was not measured")
	}
	res, err := timeProcesses(specs, runs)
	if err != nil {
		return err
	}
	r.Helper = append(r.Helper, res...)
	return ap.stop()
}

// faceTables map the file profile to every build-tool face, so that each
// face's row is answered through the agent.
const faceTables = `[profiles.file.goauth]
url_prefixes = ["https://goproxy.example.com"]
[profiles.file.cargo]
registries = ["internal"]
[profiles.file.kubelet]
match_images = ["registry.example.com"]
[profiles.file.bazel]
hosts = ["cache.example.com"]
[profiles.file.terraform]
hosts = ["app.terraform.io"]
`

// faceSpecs are one process per build-tool face, run as each tool runs
// it, with what the tool writes to it, answered from the agent: the links
// Bazel and Terraform need go in dir.
func faceSpecs(bin, dir string, env []string) ([]procSpec, error) {
	links := map[string]string{}
	for _, name := range []string{"credhelper-bazel", "terraform-credentials-credhelper"} {
		links[name] = filepath.Join(dir, name)
		if err := os.Symlink(bin, links[name]); err != nil {
			return nil, err
		}
	}
	return []procSpec{
		{name: "GOAUTH first run (credhelper goauth) through the agent", env: env, argv: []string{bin, "goauth"}},
		{name: "cargo credential provider get (credhelper --cargo-plugin) through the agent", env: env, argv: []string{bin, "--cargo-plugin"},
			stdin: `{"v":1,"registry":{"index-url":"sparse+https://cargo.example.com/index/","name":"internal"},"kind":"get","operation":"read"}` + "\n"},
		{name: "kubelet image credential provider (credhelper kubelet) through the agent", env: env, argv: []string{bin, "kubelet"},
			stdin: `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"registry.example.com/app:1"}`},
		{name: "Bazel credential helper get (credhelper-bazel) through the agent", env: env, argv: []string{links["credhelper-bazel"], "get"},
			stdin: `{"uri":"https://cache.example.com/ac/00"}`},
		{name: "Terraform credentials helper get (terraform-credentials-credhelper) through the agent", env: env, argv: []string{links["terraform-credentials-credhelper"], "get", "app.terraform.io"}},
	}, nil
}
