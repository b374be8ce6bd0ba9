package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/credhelper/credhelper/agent"
	"github.com/credhelper/credhelper/config"
	"github.com/credhelper/credhelper/internal/facerules"
	"github.com/credhelper/credhelper/protocols/bazel"
	"github.com/credhelper/credhelper/protocols/cargo"
	"github.com/credhelper/credhelper/protocols/face"
	"github.com/credhelper/credhelper/protocols/goauth"
	"github.com/credhelper/credhelper/protocols/kubelet"
	"github.com/credhelper/credhelper/protocols/terraform"
	"github.com/credhelper/credhelper/provider"
)

// maxFastProfiles bounds how many profiles the front fetches from the agent
// before answering a face; beyond it credhelper-full answers.
const maxFastProfiles = 16

// Build-tool faces the front answers, recognised by the exact command lines
// the tools run.
const (
	faceGoAuth    = "goauth"    // credhelper goauth (the first run; the 4xx re-run may refresh)
	faceCargo     = "cargo"     // credhelper --cargo-plugin
	faceKubelet   = "kubelet"   // credhelper kubelet
	faceBazel     = "bazel"     // credhelper-bazel get
	faceTerraform = "terraform" // terraform-credentials-credhelper get HOST
)

// whichFace returns the face args run, or "" for anything the front leaves
// to credhelper-full.
func whichFace(args []string) string {
	name := filepath.Base(args[0])
	switch {
	case name == "credhelper-bazel":
		if len(args) == 2 && args[1] == "get" {
			return faceBazel
		}
		return ""
	case strings.HasPrefix(name, "terraform-credentials-"):
		if len(args) == 3 && args[1] == "get" {
			return faceTerraform
		}
		return ""
	case strings.HasPrefix(name, "docker-credential-"), strings.HasPrefix(name, "git-credential-"):
		return ""
	}
	if len(args) != 2 {
		return ""
	}
	switch args[1] {
	case "goauth":
		return faceGoAuth
	case "--cargo-plugin":
		return faceCargo
	case "kubelet":
		return faceKubelet
	}
	return ""
}

// fastFace answers a build-tool face from a running agent: it reads the
// config file, asks the agent for every profile the face could need and,
// only when the agent answered for all of them, reads the tool's request
// and answers it exactly as credhelper-full would. It declines (ok false)
// before reading standard input whenever anything is unusual, leaving
// credhelper-full to answer or to explain the error.
func fastFace(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int, ok bool) {
	f := whichFace(args)
	if f == "" {
		return 0, false
	}
	for _, v := range []string{"CREDHELPER_BACKEND", "CREDHELPER_ISSUER", "CREDHELPER_NO_AGENT"} {
		if os.Getenv(v) != "" {
			return 0, false
		}
	}
	path := config.DefaultPath()
	if path == "" {
		return 0, false
	}
	cfg, err := config.Load(path, os.Getenv("CREDHELPER_CONFIG") != "")
	if err != nil {
		return 0, false
	}
	facerules.Check(cfg)
	if len(facerules.Unusable(cfg)) > 0 {
		// credhelper-full answers for the profiles that work, fails the
		// requests an unusable one would answer, and warns about the rest.
		return 0, false
	}
	var profiles []string
	var serve func(face.Resolver) error
	minValidity := facerules.MinValidity(cfg, config.Duration{})
	switch f {
	case faceGoAuth:
		rules := facerules.GoAuth(cfg)
		for _, r := range rules {
			profiles = append(profiles, r.Profile)
		}
		serve = func(r face.Resolver) error {
			h, herr := goauth.New(r, rules)
			if herr != nil {
				return herr
			}
			return h.Serve(context.Background(), nil, nil, stdout)
		}
	case faceCargo:
		rules := facerules.Cargo(cfg)
		for _, r := range rules {
			profiles = append(profiles, r.Profile)
		}
		serve = func(r face.Resolver) error {
			h, herr := cargo.New(r, rules, func(o *cargo.Options) { o.MinValidity = minValidity })
			if herr != nil {
				return herr
			}
			return h.Serve(context.Background(), stdin, stdout)
		}
	case faceKubelet:
		rules := facerules.Kubelet(cfg)
		for _, r := range rules {
			profiles = append(profiles, r.Profile)
		}
		serve = func(r face.Resolver) error {
			h, herr := kubelet.New(r, rules, func(o *kubelet.Options) { o.MinValidity = minValidity })
			if herr != nil {
				return herr
			}
			return h.Serve(context.Background(), stdin, stdout)
		}
	case faceBazel:
		rules := facerules.Bazel(cfg)
		for _, r := range rules {
			profiles = append(profiles, r.Profile)
		}
		serve = func(r face.Resolver) error {
			h, herr := bazel.New(r, rules, func(o *bazel.Options) { o.MinValidity = minValidity })
			if herr != nil {
				return herr
			}
			return h.Serve(context.Background(), "get", stdin, stdout)
		}
	case faceTerraform:
		rules := facerules.Terraform(cfg)
		for _, r := range rules {
			profiles = append(profiles, r.Profile)
		}
		serve = func(r face.Resolver) error {
			h, herr := terraform.New(r, rules)
			if herr != nil {
				return herr
			}
			return h.Serve(context.Background(), args[1:], stdin, stdout)
		}
	}
	if len(profiles) == 0 || len(profiles) > maxFastProfiles {
		return 0, false
	}
	wait := 30 * time.Second
	if f == faceGoAuth {
		// GOAUTH's first run comes before every go command's first fetch,
		// needed or not: it waits on no issuer. The agent answers a usable
		// pair from memory in a millisecond; one it is still refreshing is
		// left to credhelper-full, which answers what is usable now.
		wait = time.Second
	}
	pairs, ok := fromAgent(cfg, path, profiles, wait)
	if !ok {
		return 0, false
	}
	err = serve(face.ResolverFunc(func(_ context.Context, profile string) (provider.Pair, error) {
		if p, ok := pairs[profile]; ok {
			return p, nil
		}
		return provider.Pair{}, fmt.Errorf("profile %q was not fetched from the agent", profile)
	}))
	if err != nil {
		var partial *goauth.PartialError
		if errors.As(err, &partial) {
			return 0, true
		}
		fmt.Fprintf(stderr, "credhelper: %s\n", strings.Join(strings.Fields(err.Error()), " "))
		return 1, true
	}
	return 0, true
}

// fromAgent asks the agent for each profile, at the socket credhelper-full
// would use; ok is false unless every answer is a usable pair.
func fromAgent(cfg *config.File, cfgPath string, profiles []string, wait time.Duration) (map[string]provider.Pair, bool) {
	if abs, err := filepath.Abs(cfgPath); err == nil {
		cfgPath = abs
	}
	c := agent.Client{Path: agent.SocketPath()}
	if os.Getenv(agent.SocketEnv) == "" && cfg.Agent.Socket != "" {
		// The config file moves the socket, unless an agent answers at the
		// default one (credhelper-full tries that first too).
		if _, err := c.Ping(context.Background()); err != nil {
			noteSilent(err, c.Path)
			c.Path = expandHome(cfg.Agent.Socket)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	pairs := make(map[string]provider.Pair, len(profiles))
	for _, name := range profiles {
		p, err := c.Get(ctx, agent.Request{Profile: name, Endpoint: os.Getenv("CREDHELPER_ENDPOINT"), Config: cfgPath})
		if err != nil || p.AuthToken == "" {
			noteSilent(err, c.Path)
			return nil, false
		}
		pairs[name] = p
	}
	return pairs, true
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}
