package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/credhelper/credhelper/backends/awssm"
	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/bench"
	"github.com/credhelper/credhelper/provider"
)

// ProcessResult is the wall time and peak RSS of one command run repeatedly.
type ProcessResult struct {
	Name      string     `json:"name"`
	Command   string     `json:"command"`
	Wall      bench.Dist `json:"wall"`
	PeakRSSKB int64      `json:"peak_rss_kb_median"`
}

// timeProcess runs argv runs times (after two warm-ups) and records wall
// time and the child's peak RSS from wait4's rusage.
func timeProcess(name string, env []string, runs int, argv ...string) (ProcessResult, error) {
	var walls []time.Duration
	var rss []int64
	for i := -2; i < runs; i++ {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		err := cmd.Run()
		wall := time.Since(start)
		if err != nil {
			return ProcessResult{}, fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(errb.String()))
		}
		if out.Len() == 0 {
			return ProcessResult{}, fmt.Errorf("%s printed nothing", name)
		}
		if i < 0 {
			continue
		}
		walls = append(walls, wall)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = append(rss, ru.Maxrss)
		}
	}
	sort.Slice(rss, func(i, j int) bool { return rss[i] < rss[j] })
	res := ProcessResult{Name: name, Command: strings.Join(redactArgs(argv), " "), Wall: bench.Summarise(walls)}
	if len(rss) > 0 {
		res.PeakRSSKB = rss[len(rss)/2]
	}
	return res, nil
}

func redactArgs(argv []string) []string {
	out := append([]string(nil), argv...)
	out[0] = filepath.Base(out[0])
	return out
}

// helperLatency times one `credhelper get` process per backend against the
// aws CLI reading the same moto secret.
func helperLatency(ctx context.Context, r *Results, bin string, runs int) error {
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
	journal := "--journal-dir=" + filepath.Join(dir, "journal")
	// An empty config file: the measured process reads a config as a user's would.
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, nil, 0o600); err != nil {
		return err
	}
	env := []string{"CREDHELPER_CONFIG=" + cfgPath}
	res, err := timeProcess("credhelper get (file backend)", env, runs, bin, "get", "--backend", "file:"+credPath, journal)
	if err != nil {
		return err
	}
	r.Helper = append(r.Helper, res)

	endpoint := os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
	if endpoint == "" {
		return fmt.Errorf("AWS_ENDPOINT_URL_SECRETS_MANAGER is unset: run under scripts/testenv.sh (make bench does)")
	}
	ab, err := awssm.NewFromConfig(ctx)
	if err != nil {
		return err
	}
	secret := fmt.Sprintf("credbench/%d", time.Now().UnixNano())
	if _, err := ab.CompareAndSwap(ctx, secret, "", value); err != nil {
		return err
	}
	res, err = timeProcess("credhelper get (AWS Secrets Manager on moto)", env, runs, bin, "get", "--backend", "awssm:"+secret, journal)
	if err != nil {
		return err
	}
	r.Helper = append(r.Helper, res)

	aws, err := exec.LookPath("aws")
	if err != nil {
		r.Notes = append(r.Notes, "aws CLI not installed: the aws CLI comparison was not measured")
		return nil
	}
	res, err = timeProcess("aws secretsmanager get-secret-value (aws CLI, same moto secret)", nil, runs, aws,
		"secretsmanager", "get-secret-value", "--secret-id", secret, "--endpoint-url", endpoint, "--query", "SecretString", "--output", "text")
	if err != nil {
		return err
	}
	r.Helper = append(r.Helper, res)
	return agentLatency(ctx, r, bin, dir, credPath, runs)
}
