package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/credhelper/credhelper/backends/file"
	"github.com/credhelper/credhelper/internal/bench"
	"github.com/credhelper/credhelper/plugins"
	"github.com/credhelper/credhelper/provider"
)

// BoundaryResult is the latency of one backend Load.
type BoundaryResult struct {
	Name    string     `json:"name"`
	Latency bench.Dist `json:"latency"`
}

// pluginBoundary times Loads of the same file through the go-plugin gRPC
// boundary and in process.
func pluginBoundary(ctx context.Context, r *Results, quick bool) error {
	n := 5000
	if quick {
		n = 300
	}
	dir, err := os.MkdirTemp("", "credbench-plugin-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "fileplugin")
	if out, err := exec.Command("go", "build", "-o", bin, "./examples/fileplugin").CombinedOutput(); err != nil {
		return errorf("build plugin: %v: %s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	pl, err := plugins.Open(plugins.Spec{Path: bin, SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		return err
	}
	defer pl.Close()
	viaPlugin, err := pl.Backend(ctx)
	if err != nil {
		return err
	}
	inproc, _ := file.New()
	key := filepath.Join(dir, "cred.json")
	v, _ := (&provider.Record{Pair: provider.Pair{AuthToken: "a", RefreshToken: "r", ValidUntil: time.Now().Add(time.Hour)}}).Encode()
	if _, err := inproc.CompareAndSwap(ctx, key, "", v); err != nil {
		return err
	}
	for _, b := range []struct {
		name string
		be   provider.Backend
	}{{"file backend Load through the plugin boundary (go-plugin gRPC, AutoMTLS)", viaPlugin}, {"file backend Load in process", inproc}} {
		for i := 0; i < 50; i++ { // warm up: start the plugin, fill caches
			if _, err := b.be.Load(ctx, key); err != nil {
				return err
			}
		}
		ds := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			start := time.Now()
			if _, err := b.be.Load(ctx, key); err != nil {
				return err
			}
			ds = append(ds, time.Since(start))
		}
		r.Plugin = append(r.Plugin, BoundaryResult{Name: b.name, Latency: bench.Summarise(ds)})
	}
	return nil
}
